#ifndef ZONELINK_CLDNS_SHIM_H
#define ZONELINK_CLDNS_SHIM_H
// ldns uses C99 `bool`; without <stdbool.h> first, every `bool` imports into Swift as Int8.
#include <stdbool.h>
#include <stdio.h>
#include <ldns/ldns.h>
#endif
