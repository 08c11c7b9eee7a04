/*
 * policy — decisions about whether a call may proceed: Dapr's accessControl (acl.h) and the HTTP
 * middleware pipelines with their middleware — bearer, oauth2, oauth2clientcredentials, opa
 * (mw.h) — plus what they need: JWKS/JWT verification (jose.h) and a control-plane HTTP client
 * (fetch.h).
 *
 * Job: compile policy sections of a loaded Configuration into immutable, refcounted objects and
 * evaluate them per request without allocating.
 * Ownership, threading and errors: stated per object in its header (acl.h).
 */
#ifndef OUTRIGGER_POLICY_H
#define OUTRIGGER_POLICY_H

#include "policy/acl.h"

#endif
