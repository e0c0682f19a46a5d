/* The dataset fingerprint's shared parts: fingerprint.c reads cases and
 * computes the numbers, fingerprint_json.c writes and reads the file. */
#ifndef VT_FINGERPRINT_H
#define VT_FINGERPRINT_H

#include "internal.h"
#include "voxtile_convert.h"

#include <pthread.h>

/* The values of one channel that are not small integers, in one case: their
 * count, mean and sum of squared deviations (finite values), and how many
 * are +inf and -inf. */
typedef struct vt__fp_moments {
    uint64_t n, pinf, ninf;
    double mean, m2;
} vt__fp_moments;

/* One case. */
typedef struct vt__fp_case {
    char *image, *seg;     /* paths; NULL when a loaded file did not record them */
    uint64_t seq;          /* order of arrival: the last key of the sort */
    double spacing[3];
    uint64_t shape[3];     /* before cropping; 0 when not recorded */
    uint64_t after[3];     /* after cropping */
    int64_t crop[6];
    vt__fp_moments *mom;   /* per channel; NULL for a loaded case */
} vt__fp_case;

/* One channel's histograms (fingerprint.c). */
typedef struct vt__fp_hist vt__fp_hist;

struct vt_fingerprint {
    pthread_mutex_t lock;
    uint64_t channels;          /* 0 until the first case */
    vt__fp_hist *hist;          /* per channel; NULL when loaded */
    uint64_t *nan;              /* per channel */
    vt__fp_case *cases;
    size_t ncases, cap;
    uint64_t seq;
    bool loaded;                /* from a file: statistics as read, no more cases */
    bool fresh;                 /* stats and sum below are up to date */
    vt_fingerprint_stats *stats; /* per channel */
    vt_fingerprint_summary sum;
};

/* Bring fp->stats and fp->sum up to date (cases sorted, statistics
 * computed); the caller holds the lock. 0 or VT_ENOMEM. */
VT_INTERNAL int vt__fp_refresh(vt_fingerprint *fp);
/* An empty fingerprint (loaded or not). */
VT_INTERNAL vt_fingerprint *vt__fp_alloc(bool loaded);
/* Room for @p channels channels (stats, NaN counts, and histograms unless
 * loaded). 0 or VT_ENOMEM (no message). */
VT_INTERNAL int vt__fp_set_channels(vt_fingerprint *fp, uint64_t channels);
/* Room for one more case, zeroed, at fp->cases[fp->ncases] (not counted
 * yet); NULL when out of memory. */
VT_INTERNAL vt__fp_case *vt__fp_case_slot(vt_fingerprint *fp);
/* numpy's np.percentile(x, q) (method 'linear') of @p n sorted values. */
VT_INTERNAL double vt__np_percentile(const double *sorted, size_t n, double q);

#endif
