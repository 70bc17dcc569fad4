/* Compiled as api/ is (make check-layers): must fail, api/ never sees a
 * header of server/. */
#include "router.h"
