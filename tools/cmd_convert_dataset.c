/* voxtile convert-dataset: an nnU-Net raw dataset folder, one store per
 * case, cases converted in parallel processes. What a case is, where its
 * store goes, whether it is up to date and how it is converted is the
 * library's (vt_dataset_*, src/conversion/dataset.c, shared with
 * voxtile.dask.convert_dataset); this command runs the cases in forked
 * children, -j at a time, and reports. */
#include "cli.h"
#include "store_options.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

static const char dataset_help[] =
    "usage: voxtile convert-dataset RAW_DIR -o OUT_DIR [-j N] [store options]\n"
    "\n"
    "Convert an nnU-Net raw dataset folder (dataset.json, imagesTr/CASE_XXXX.nii.gz,\n"
    "labelsTr/CASE.nii.gz, optional imagesTs/) to one store per case: OUT_DIR/CASE.vxt\n"
    "(with 'seg' when a label exists) and OUT_DIR/imagesTs/CASE.vxt, plus a copy of\n"
    "dataset.json. Cases run in parallel; a rerun skips cases already converted with\n"
    "the same store options (and converts again those made with others); a failing\n"
    "case is reported and the others go on (exit status 1 if any failed).\n"
    "\n"
    "  -o, --output DIR          output folder (created)\n"
    "  -j, --jobs N              cases converted at once (default: all cores)\n"
    "  store options as for convert: --crop-nonzero, --crop-to-label [M], --levels N,\n"
    "  --dtype T, --tile Z,Y,X, --codec C, --level N, --shuffle M, --apply-scaling,\n"
    "  --spacing Z,Y,X, --order O, --separate-z M, --normalize N, --fingerprint FILE,\n"
    "  --norm-params L,H,M,S (voxtile convert --help says what each does)\n"
    "\n"
    "example: voxtile stats nnUNet_raw/Dataset003_Liver --fingerprint -o fp.json\n"
    "         voxtile convert-dataset nnUNet_raw/Dataset003_Liver -o stores/Dataset003 -j 8 --crop-nonzero \\\n"
    "             --spacing 1,0.77,0.77 --normalize ct --fingerprint fp.json\n";

/* Convert case @p i (in a child process); 0 on success. */
static int convert_case(const vt_dataset *ds, size_t i, const char *out, const vt_convert_opts *o)
{
    vt_dataset_case_info c;
    vt_dataset_case(ds, i, &c);
    for (size_t ch = 0; ch < c.nimages; ch++)
        if (c.images[ch] == NULL) {
            fprintf(stderr, "voxtile: case %s: channel %04zu is missing\n", c.id, ch);
            return 1;
        }
    if (vt_dataset_convert_case(ds, i, out, o, NULL) != 0) {
        fprintf(stderr, "voxtile: case %s: %s\n", c.id, vt_errmsg(NULL));
        return 1;
    }
    return 0;
}

int cmd_convert_dataset(int argc, char **argv)
{
    static const struct option opts[] = {STORE_OPTIONS,
                                         {"output", required_argument, 0, 'o'},
                                         {"jobs", required_argument, 0, 'j'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    vt_convert_opts o;
    vt_convert_opts_init(&o);
    int jobs = online_cpus(), c, quiet = 0;
    const char *out = NULL;
    while ((c = getopt_long(argc, argv, "o:j:qh", opts, NULL)) != -1) {
        if (store_option(c, &o, argc, argv))
            continue;
        switch (c) {
        case 'o': out = optarg; break;
        case 'j': jobs = (int)parse_int("-j", optarg, 1, 1024); break;
        case 'q': quiet = 1; break;
        case 'h': fputs(dataset_help, stdout); return 0;
        default: die_usage("convert-dataset: bad option");
        }
    }
    if (optind + 1 != argc || out == NULL)
        die_usage("convert-dataset: expected RAW_DIR and -o OUT_DIR");
    store_options_done(&o, "convert-dataset");
    const char *raw = argv[optind];
    vt_dataset *ds;
    if (vt_dataset_open(raw, &ds) != 0)
        return lib_error(vt_errmsg(NULL), VT_EIO);
    if (vt_dataset_prepare(ds, out) != 0) {
        lib_error(vt_errmsg(NULL), VT_EIO);
        vt_dataset_close(ds);
        return 1;
    }
    size_t ncases = vt_dataset_ncases(ds);
    o.threads = 1;
    size_t done = 0, skipped = 0, failed = 0, running = 0, next = 0, redone = 0;
    pid_t *pids = calloc(ncases ? ncases : 1, sizeof *pids);
    double t0 = now();
    while (next < ncases || running > 0) {
        while (next < ncases && running < (size_t)jobs) {
            size_t k = next++;
            vt_case_status was = VT_CASE_MISSING; /* finished by an earlier run: the same options? */
            vt_dataset_case_status(ds, k, out, &o, &was);
            if (was == VT_CASE_UP_TO_DATE) {
                skipped++;
                continue;
            }
            if (was == VT_CASE_OUTDATED)
                redone++;
            fflush(NULL);
            pid_t pid = fork();
            if (pid < 0) {
                fprintf(stderr, "voxtile: cannot start a process: %s\n", strerror(errno));
                failed++;
                continue;
            }
            if (pid == 0) { /* the child: one case, then nothing of the parent's left allocated */
                int rc = convert_case(ds, k, out, &o);
                free(pids);
                vt_dataset_close(ds);
                _exit(rc);
            }
            pids[next - 1] = pid;
            running++;
        }
        if (running == 0)
            break;
        int status;
        pid_t pid = wait(&status);
        if (pid < 0)
            break;
        running--;
        for (size_t i = 0; i < ncases; i++)
            if (pids[i] == pid) {
                bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
                if (!ok && !(WIFEXITED(status))) {
                    vt_dataset_case_info ci;
                    vt_dataset_case(ds, i, &ci);
                    fprintf(stderr, "voxtile: case %s: the converter died (signal %d)\n", ci.id,
                            WIFSIGNALED(status) ? WTERMSIG(status) : 0);
                }
                if (ok)
                    done++;
                else
                    failed++;
                if (!quiet && isatty(STDERR_FILENO))
                    fprintf(stderr, "\r%zu of %zu cases", done + skipped + failed, ncases);
            }
    }
    if (!quiet && isatty(STDERR_FILENO))
        fputc('\n', stderr);
    if (!quiet)
        printf("%s: %zu cases: %zu converted (%zu again: made with other options), %zu already there, %zu failed, "
               "in %.1f s with %d jobs\n",
               out, ncases, done, redone, skipped, failed, now() - t0, jobs);
    vt_dataset_close(ds);
    free(pids);
    return failed ? 1 : 0;
}

