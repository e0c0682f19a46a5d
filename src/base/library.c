/* The library as a whole: its version, and the sizes of the public structs
 * of both public headers for bindings (the Python package checks its layout
 * against them). The one base file that knows voxtile_convert.h, for sizeof
 * only: it calls nothing above base. */
#include "internal.h"
#include "voxtile_convert.h"

#include <string.h>

int vt_version_number(void) { return VT_VERSION_NUMBER; }

const char *vt_version_string(void)
{
#define VT_STR2(x) #x
#define VT_STR(x) VT_STR2(x)
    return VT_STR(VT_VERSION_MAJOR) "." VT_STR(VT_VERSION_MINOR) "." VT_STR(VT_VERSION_PATCH);
}

size_t vt_struct_size(const char *name)
{
    static const struct {
        const char *name;
        size_t size;
    } structs[] = {
        {"vt_read_opts", sizeof(vt_read_opts)},       {"vt_array_info", sizeof(vt_array_info)},
        {"vt_tile_info", sizeof(vt_tile_info)},       {"vt_label_info", sizeof(vt_label_info)},
        {"vt_array_spec", sizeof(vt_array_spec)},     {"vt_writer_opts", sizeof(vt_writer_opts)},
        {"vt_convert_opts", sizeof(vt_convert_opts)}, {"vt_raw_spec", sizeof(vt_raw_spec)},
        {"vt_image_info", sizeof(vt_image_info)},     {"vt_sample_opts", sizeof(vt_sample_opts)},
        {"vt_sample_stats", sizeof(vt_sample_stats)}, {"vt_sample_target", sizeof(vt_sample_target)},
        {"vt_dataset_case_info", sizeof(vt_dataset_case_info)},
    };
    for (size_t i = 0; name && i < sizeof structs / sizeof structs[0]; i++)
        if (strcmp(name, structs[i].name) == 0)
            return structs[i].size;
    return 0;
}
