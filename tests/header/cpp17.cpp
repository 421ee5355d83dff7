// muse.hpp must compile as C++17 with -Wall -Wextra -pedantic -Werror.
#include "muse/muse.hpp"

int muse_header_cpp17_check() { return static_cast<int>(muse::model_options{}.c_params()->struct_size); }
