/**
 * A self-signed test certificate for `agent-tls.test` (EC P-256, valid until 2126), so tests can
 * exercise the https path of the identity fetcher: the connection is pinned to a validated IP while
 * the certificate is still checked against the published host name. Test use only.
 */
export const TLS_TEST_HOST = 'agent-tls.test';

export const TLS_TEST_CERT = `-----BEGIN CERTIFICATE-----
MIIBpTCCAUqgAwIBAgIUa7SFEvp6cSPdaVf0i1jPRo1a+bMwCgYIKoZIzj0EAwIw
GTEXMBUGA1UEAwwOYWdlbnQtdGxzLnRlc3QwIBcNMjYxMTIyMTEyODE3WhgPMjEy
NjEwMjkxMTI4MTdaMBkxFzAVBgNVBAMMDmFnZW50LXRscy50ZXN0MFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEhMFuBpy5vZq0AmoG5rRv0jR5vz6VeU8AQ4AepHfg
jtV+W26ZooH8uoKCVjo/e17BDoBctHVgVUMEOn+84xXB4aNuMGwwHQYDVR0OBBYE
FAqVac8kVBPpanZFhkeq3dt8ihVNMB8GA1UdIwQYMBaAFAqVac8kVBPpanZFhkeq
3dt8ihVNMA8GA1UdEwEB/wQFMAMBAf8wGQYDVR0RBBIwEIIOYWdlbnQtdGxzLnRl
c3QwCgYIKoZIzj0EAwIDSQAwRgIhAOGGhnZbP4P7hUkbCrMMlLfHcI8Sbb40Y7LB
gApxXeXAAiEArmK/YqmAsX3pbHUk5Qrz31BNfY52f7+O07dgGkpzSlM=
-----END CERTIFICATE-----`;

export const TLS_TEST_KEY = `-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgVzcQWTlKu6EFeJkN
TyfFqdrrYwMPEIDABvo52Fqs5UKhRANCAASEwW4GnLm9mrQCagbmtG/SNHm/PpV5
TwBDgB6kd+CO1X5bbpmigfy6goJWOj97XsEOgFy0dWBVQwQ6f7zjFcHh
-----END PRIVATE KEY-----`;
