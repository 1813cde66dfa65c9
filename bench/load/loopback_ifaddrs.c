/*
 * LD_PRELOAD shim for the Janus benchmark: getifaddrs() as the C library returns it, with
 * IFF_LOOPBACK cleared on every interface.
 *
 * Janus gathers its ICE candidates with libnice, which skips loopback interfaces; the
 * benchmark runs in a network namespace whose only interface is lo, so without this Janus
 * would offer no candidate at all. Built by bench/load/janus.py into the point's
 * directory (never committed as a binary): cc -shared -fPIC -o X.so loopback_ifaddrs.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <stddef.h>

int getifaddrs(struct ifaddrs **list)
{
    static int (*real)(struct ifaddrs **) = NULL;
    if (real == NULL) {
        real = (int (*)(struct ifaddrs **))dlsym(RTLD_NEXT, "getifaddrs");
        if (real == NULL)
            return -1;
    }
    int result = real(list);
    if (result == 0) {
        for (struct ifaddrs *entry = *list; entry != NULL; entry = entry->ifa_next)
            entry->ifa_flags &= ~IFF_LOOPBACK;
    }
    return result;
}
