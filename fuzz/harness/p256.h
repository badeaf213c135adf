/*
 * P-256 by OpenSSL's libcrypto, the reference the firmware's own P-256 is checked against:
 * d·G for the device_public_key oracle (abi), point validity and ECDSA-SHA256 verification for
 * the ECDHE handshake oracle (common.h, hs_oracle). Never the firmware's code.
 */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/x509.h>

static EC_GROUP *p256_group(void) {
  static EC_GROUP *g;
  if (!g) g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
  if (!g) fail("p256: OpenSSL has no P-256 group");
  return g;
}

/* out = d·G (65 bytes, 0x04 ‖ X ‖ Y); 0 when d is not in [1, n − 1]. */
static int p256_public_of(const uint8_t d[32], uint8_t out[65]) {
  EC_GROUP *g = p256_group();
  BIGNUM *k = BN_bin2bn(d, 32, NULL);
  int ok = k && !BN_is_zero(k) && BN_cmp(k, EC_GROUP_get0_order(g)) < 0;
  EC_POINT *p = ok ? EC_POINT_new(g) : NULL;
  ok = ok && p && EC_POINT_mul(g, p, k, NULL, NULL, NULL) == 1 &&
       EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, out, 65, NULL) == 65;
  EC_POINT_free(p);
  BN_free(k);
  return ok;
}

/* Whether `pt` (65 bytes) is an uncompressed point on P-256 (not the point at infinity). */
static int p256_valid_point(const uint8_t *pt) {
  if (pt[0] != 4) return 0;
  EC_GROUP *g = p256_group();
  EC_POINT *p = EC_POINT_new(g);
  int ok = p && EC_POINT_oct2point(g, p, pt, 65, NULL) == 1 && EC_POINT_is_on_curve(g, p, NULL) == 1 &&
           !EC_POINT_is_at_infinity(g, p);
  EC_POINT_free(p);
  return ok;
}

/* The SubjectPublicKeyInfo prefix of a P-256 point (id-ecPublicKey, prime256v1, BIT STRING). */
static const uint8_t P256_SPKI_PREFIX[26] = {0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01,
                                             0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00};

/* ECDSA-SHA256 of `data` by the key `point` (65 bytes), `sig` DER-encoded: 1 valid, 0 not. */
static int p256_verify(const uint8_t *point, const uint8_t *data, size_t n, const uint8_t *sig, size_t sigLen) {
  uint8_t spki[sizeof P256_SPKI_PREFIX + 65];
  memcpy(spki, P256_SPKI_PREFIX, sizeof P256_SPKI_PREFIX);
  memcpy(spki + sizeof P256_SPKI_PREFIX, point, 65);
  const uint8_t *q = spki;
  EVP_PKEY *key = d2i_PUBKEY(NULL, &q, sizeof spki);
  if (!key) return 0;
  EVP_MD_CTX *c = EVP_MD_CTX_new();
  int ok = c && EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, key) == 1 && EVP_DigestVerify(c, sig, sigLen, data, n) == 1;
  EVP_MD_CTX_free(c);
  EVP_PKEY_free(key);
  return ok;
}
