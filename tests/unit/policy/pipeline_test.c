/* The pipeline's header rules: what a middleware adds can never split or inject a header. */
#include <string.h>

#include "base/err.h"
#include "policy/mw.h"
#include "test.h"

TEST(set_header_refuses_injection)
{
    pol_call_t c;
    pol_call_init(&c);
    ASSERT_EQ(pol_call_set_header(&c, "authorization", "Bearer abc.def"), 0);
    ASSERT_EQ(pol_call_set_header(&c, "x-a", "tab\tis fine"), 0);
    ASSERT_EQ(pol_call_set_header(&c, "authorization", "Bearer x\r\nx-admin: 1"), ERR_INVAL);
    ASSERT_EQ(pol_call_set_header(&c, "authorization", "Bearer x\nx-admin: 1"), ERR_INVAL);
    ASSERT_EQ(pol_call_set_header(&c, "bad name", "v"), ERR_INVAL);
    ASSERT_EQ(pol_call_set_header(&c, "x:y", "v"), ERR_INVAL);
    ASSERT_EQ(pol_call_set_header(&c, "", "v"), ERR_INVAL);
    ASSERT_EQ(pol_call_resp_header(&c, "set-cookie", "a=b\r\nlocation: evil"), ERR_INVAL);
    ASSERT_EQ(c.set_headers.header_count, 2u);
    ASSERT_EQ(c.resp_headers.header_count, 0u);
    pol_call_free(&c);
}

TEST(reject_answers_with_status_text)
{
    pol_call_t c;
    pol_call_init(&c);
    ASSERT_EQ(pol_call_reject(&c, 401), POL_RESPOND);
    ASSERT_EQ(c.status, 401);
    ASSERT_MEMEQ(c.resp_body.ptr, c.resp_body.len, "Unauthorized");
    pol_call_free(&c);
}
