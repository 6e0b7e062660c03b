// The whole C surface the Swift layer sees: libpq's public client header.
#ifndef DURABLE_CLIBPQ_SHIM_H
#define DURABLE_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
