// identity.h: who a worker runs as, decided once by the parent (sniproxyd.cc), passed on the
// worker's command line (options.h) and applied by the jail (sandbox.h).
#pragma once

#include <sys/types.h>

namespace sniproxy {

struct Identity {
    uid_t uid = 0;
    gid_t gid = 0;
    bool jail = false; // root: chroot and setuid; otherwise sandbox only
};

} // namespace sniproxy
