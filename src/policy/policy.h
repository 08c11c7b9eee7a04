/*
 * policy — decisions about whether a call may proceed: Dapr's accessControl today; the HTTP
 * middleware pipeline (bearer, oauth2, opa) and secret stores later.
 *
 * Job: compile policy sections of a loaded Configuration into immutable, refcounted objects and
 * evaluate them per request without allocating.
 * Ownership, threading and errors: stated per object in its header (acl.h).
 */
#ifndef OUTRIGGER_POLICY_H
#define OUTRIGGER_POLICY_H

#include "policy/acl.h"

#endif
