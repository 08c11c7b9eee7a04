/*
 * jose_keys.h — fixed test keys (private, PEM) for the JOSE fuzz targets, so that their seed
 * corpora can hold tokens that verify. Test data only: never use them elsewhere.
 * gen_jose_corpus.py reads them from this file.
 */
#ifndef OUTRIGGER_FUZZ_JOSE_KEYS_H
#define OUTRIGGER_FUZZ_JOSE_KEYS_H

#define FZ_PEM_RSA                                                                                 \
    "-----BEGIN PRIVATE KEY-----\n"                                                                \
    "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQCeRUrAM4g4fEht\n"                           \
    "+LJ3OQfKdjWDgtmGgDanaooNE9gRFYJUd4BMKgCeFyezRltziEYxGNTX5xDuaAZ+\n"                           \
    "3kjV8+hbbcw2pz51KWadKHIOgaxH/pCeHvbbP/AwJECGYB2XRHYFtI7ro3IGMqTX\n"                           \
    "1GH0L04kGuOlqWh0K75wpfNSk36yuy31cySWJTeyIAbNeNYNMpw03Wa+qxAPo6st\n"                           \
    "HkFiaKQ1fcPJu/pp4vBh/PORsn+xoAtxjRlam/o4Bx4KXVm7KLXSCuoB3mMEWyOj\n"                           \
    "9zmQssFYoz7MvPcHXc7tiA1ryFjzc4XHBRWznkdtkPrrckxVvXk0UfLAU25HlQ4n\n"                           \
    "BxhUi6P3AgMBAAECggEAAItMLthZxPfMHyK+B4RY6xVxNyz1RIfoWfkb0IGVm325\n"                           \
    "pL3+uz0xNdUwqG/QPxVh1nhfz4yoSHw2qfKqBqnWSUeqQ66BLrUVfYINZ4So3vPm\n"                           \
    "v0VPR0D80RiEcMq3iy3LwuUAOZp3FYovg+YS5bHHIDNa8nMZOgBtUFDVAKPEscMD\n"                           \
    "7klaRSvAa1r0ouw0PHQrkbEb7yyGxSFkrtUjBF3kMAE8IG0XVkA+tRVL2bWjzV1G\n"                           \
    "5nK3F3wvUVHlzPAd2cw7swWtisdbX6xraAX9xbPD+5+I4EXmES7FLYFqz5QVuI3Z\n"                           \
    "Puq2MPKZPVsZTGdLM27FiJk0/iUa6ZKtIYCO82Z/7QKBgQDL2SV+rJlNBVAT688q\n"                           \
    "SZSKKkDyrdSv99+FSJK0lNBm4m0PI576HpMGdno0AubQy35jkHQvACLuCb8xgjD7\n"                           \
    "RKhw4D5NeNAHG8gcjhanNVEBEE/2dJP6BOAaQWZ6X6yPkuf9+MTU8KFslvuQHVjq\n"                           \
    "tPx4wy+ctNvHgCioeqp+ST8z/QKBgQDGwxXIv+y0qzU/Sqr8AGz/vuTrwmE+SrWG\n"                           \
    "x7wtW/mISJdSH1/yoQBYAoZhKdVOccWIzJlX9RR3cKEqzyyLwVS3/514hWzzyVUk\n"                           \
    "FLspkNLoN7RSg9f5fNZML/1HGI6JwtSZpBeQaIq6h5d44OjpYGaxKV12JwumAjGs\n"                           \
    "RZheQHCoAwKBgDfilTvwN6r87OI5QLdYKsfiI6Ikc+22J+pTZhzpu2SpaLrAykHK\n"                           \
    "Bga8jm4Z6YuOblz/akrEX88gjvEUvzbzsLYZVBtLJsT8IdVqQt2eaVHAVhu8BCGE\n"                           \
    "Gqg4C8860YUfAkkHXXb/bVHm5pqw4QKfkaPN5wywLJy6Dut5japHjHNFAoGARt74\n"                           \
    "vYPxmtoROmgdX42nT+l5JrdAhT2OTGibqHDLINUBX77gL1tJDBiaYbrQ3A+lJ4oM\n"                           \
    "g1hX297FGMaWU56z3oe+VmL83lBDk4Hw2nlROoviOCnasJLatn/GB7ux110pAT+J\n"                           \
    "R2x/StNeJzPK2KwO8cyWDrMNbDwMCikmkzTW9pECgYBSwx+aPGFmKUnltAOVh7+4\n"                           \
    "Snxp4chYTphJ0d28yJKKUwSMqXSkY2jH/INJBg/BhFGVFMgy2rHsqIOeTR7CkS0d\n"                           \
    "ap5t/DX53keMgvC24H8W2u76SuiIaVebd/uzfBV9BAHGkntnfQx4OS/FNqKFRii5\n"                           \
    "CLTHu6ysZrXDEbtfMB5tSA==\n"                                                                   \
    "-----END PRIVATE KEY-----\n"
#define FZ_PEM_EC256                                                                               \
    "-----BEGIN PRIVATE KEY-----\n"                                                                \
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgSsIVt45/MW3zjgDf\n"                           \
    "192Kgm+Ye4NhtWnqpglqQWmcDxGhRANCAATwU18MqynVEz0lRKlmK7NRmjY4uCRU\n"                           \
    "CxHZZnjKJ4+yXAlYXPjUKntwhd3LYiM0hxTGEf/EEFXjSoPahT0Yd1y5\n"                                   \
    "-----END PRIVATE KEY-----\n"
#define FZ_PEM_EC384                                                                               \
    "-----BEGIN PRIVATE KEY-----\n"                                                                \
    "MIG2AgEAMBAGByqGSM49AgEGBSuBBAAiBIGeMIGbAgEBBDB16sBoYNu5oNzxOBr1\n"                           \
    "O1/gPN40XVsITxraca8zA0ruoHbJu15DpWREHSIdzefYbi6hZANiAATbJuvvDh/x\n"                           \
    "bx+FkSjOHFMGh6mROZTIg0xRbjh0PJHhVsccMTW9zuEU9fNCbGLAePRYSWq2nJUx\n"                           \
    "f7HWAIDRUg82GZvK/nnl6b9WrNnbuu0DxOVrpXfvyq9Wv4p2iW9iC9g=\n"                                   \
    "-----END PRIVATE KEY-----\n"
#define FZ_PEM_ED25519                                                                             \
    "-----BEGIN PRIVATE KEY-----\n"                                                                \
    "MC4CAQAwBQYDK2VwBCIEIMtclQgzLtAb7mNLSOnR8qZyQ5Pbvxua2kpv2xz2fOo2\n"                           \
    "-----END PRIVATE KEY-----\n"

#endif
