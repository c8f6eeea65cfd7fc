#ifndef ZONELINK_CNFTABLES_SHIM_H
#define ZONELINK_CNFTABLES_SHIM_H
// libnftables (Debian libnftables-dev): the kernel data path's table is applied through it.
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <nftables/libnftables.h>
#endif
