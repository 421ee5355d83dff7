/* muse.h must compile as strict C99 (-std=c99 -Wall -Wextra -pedantic -Werror). */
#include "muse/muse.h"

int muse_header_c99_check(void);
int muse_header_c99_check(void) {
    muse_model_params p;
    muse_model_params_init(&p);
    return (int)p.struct_size + (int)MUSE_OK;
}
