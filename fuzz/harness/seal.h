/*
 * Seals records as the cloud would (AES-128-CCM-8, RFC 9146 tls12_cid when the captured cloud
 * records carry a CID), with the server write key from the persisted slot: inputs can then reach
 * the code behind record authentication (CoAP, alerts, heals) instead of stopping at the tag.
 * OpenSSL is the reference here, not the firmware's own crypto.
 */
#include <openssl/evp.h>

/* Keys to seal with while flash holds no session (NULL: none). The datagram target sets the
 * captured session's record: in the handshake snapshots (wait-finished) the device has derived
 * exactly those keys, so sealed epoch-1 handshake records reach the Finished check. */
static const uint8_t *g_seal_fallback;

/* Header template: the last record the cloud sent to the device in the transcript. */
static uint8_t g_tpl_type;
static uint8_t g_tpl_cid[32];
static uint32_t g_tpl_cid_len;

static void seal_init(void) {
  if (g_ncloud == 0) fail("seal: no cloud datagram in the transcript");
  const uint8_t *d = g_cloud[g_ncloud - 1];
  uint32_t n = g_cloud_len[g_ncloud - 1];
  g_tpl_type = d[0];
  if (g_tpl_type != 25) return;
  for (uint32_t cl = 0; cl <= 32 && 13 + cl <= n; cl++) {
    uint32_t len = (uint32_t)d[11 + cl] << 8 | d[12 + cl];
    if (13 + cl + len == n) {
      g_tpl_cid_len = cl;
      memcpy(g_tpl_cid, d + 11, cl);
      return;
    }
  }
  fail("seal: cannot find the CID length of the captured cloud record");
}

/* Writes one sealed record (epoch 1, sequence `seq`) of `type` carrying `content` to `out`;
 * returns its length, 0 when there is no session on flash. `out` holds at least n + 80 bytes. */
static uint32_t seal_record(uint8_t *out, uint8_t type, uint64_t seq, const uint8_t *content, uint32_t n) {
  const uint8_t *slot = newest_slot(g_flash);
  if (!slot || !(slot[12] & 1)) slot = g_seal_fallback;
  if (!slot || !(slot[12] & 1)) return 0;
  const uint8_t *key = slot + 36, *iv = slot + 56;
  int cid = g_tpl_type == 25;
  uint32_t inner = n + (cid ? 1 : 0);
  uint32_t h = 13 + (cid ? g_tpl_cid_len : 0);
  uint32_t body = 8 + inner + 8;
  out[0] = cid ? 25 : type;
  out[1] = 0xfe, out[2] = 0xfd, out[3] = 0, out[4] = 1;
  for (int i = 0; i < 6; i++) out[5 + i] = (uint8_t)(seq >> (40 - 8 * i));
  if (cid) memcpy(out + 11, g_tpl_cid, g_tpl_cid_len);
  out[h - 2] = (uint8_t)(body >> 8), out[h - 1] = (uint8_t)body;
  uint8_t *explicit_nonce = out + h;
  memcpy(explicit_nonce, out + 3, 8);
  uint8_t nonce[12], aad[64];
  memcpy(nonce, iv, 4);
  memcpy(nonce + 4, explicit_nonce, 8);
  uint32_t aadLen;
  if (cid) {
    memset(aad, 0xff, 8);
    aad[8] = 25, aad[9] = (uint8_t)g_tpl_cid_len, aad[10] = 25, aad[11] = 0xfe, aad[12] = 0xfd;
    memcpy(aad + 13, out + 3, 8);
    memcpy(aad + 21, g_tpl_cid, g_tpl_cid_len);
    aad[21 + g_tpl_cid_len] = (uint8_t)(inner >> 8), aad[22 + g_tpl_cid_len] = (uint8_t)inner;
    aadLen = 23 + g_tpl_cid_len;
  } else {
    memcpy(aad, out + 3, 8);
    aad[8] = type, aad[9] = 0xfe, aad[10] = 0xfd, aad[11] = (uint8_t)(n >> 8), aad[12] = (uint8_t)n;
    aadLen = 13;
  }
  uint8_t *pt = out + h + 8;
  memmove(pt, content, n);
  if (cid) pt[n] = type;
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int ok = 1, outl;
  ok &= EVP_EncryptInit_ex(c, EVP_aes_128_ccm(), NULL, NULL, NULL);
  ok &= EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_CCM_SET_IVLEN, 12, NULL);
  ok &= EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_CCM_SET_TAG, 8, NULL);
  ok &= EVP_EncryptInit_ex(c, NULL, NULL, key, nonce);
  ok &= EVP_EncryptUpdate(c, NULL, &outl, NULL, (int)inner);
  ok &= EVP_EncryptUpdate(c, NULL, &outl, aad, (int)aadLen);
  ok &= EVP_EncryptUpdate(c, pt, &outl, pt, (int)inner);
  ok &= EVP_EncryptFinal_ex(c, pt + inner, &outl);
  ok &= EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_CCM_GET_TAG, 8, pt + inner);
  EVP_CIPHER_CTX_free(c);
  if (!ok) fail("seal: OpenSSL CCM failed");
  return h + body;
}

/* Opens one record the device sent (epoch 1, AES-128-CCM-8, with the server's CID — type 25 — when
 * the session has one) with the client write key and IV of `slot`. Returns the plaintext length
 * (plaintext at out, its real content type in *type), or -1 when it does not open under that key
 * (another epoch, or keys that changed in a heal). `rec` holds the whole record, `n` bytes. */
static int open_record(const uint8_t *slot, const uint8_t *rec, uint32_t n, uint8_t *out, uint8_t *type) {
  uint32_t cidLen = rec[0] == 25 ? slot[96] : 0;
  uint32_t h = 13 + cidLen;
  if (n < h + 16 || cidLen > 32 || rec[3] != 0 || rec[4] != 1) return -1;
  uint32_t body = (uint32_t)rec[h - 2] << 8 | rec[h - 1];
  if (h + body != n || body < 16) return -1;
  uint32_t inner = body - 16;
  uint8_t nonce[12], aad[64];
  memcpy(nonce, slot + 52, 4);
  memcpy(nonce + 4, rec + h, 8);
  uint32_t aadLen;
  if (cidLen) {
    memset(aad, 0xff, 8);
    aad[8] = 25, aad[9] = (uint8_t)cidLen, aad[10] = 25, aad[11] = 0xfe, aad[12] = 0xfd;
    memcpy(aad + 13, rec + 3, 8);
    memcpy(aad + 21, rec + 11, cidLen);
    aad[21 + cidLen] = (uint8_t)(inner >> 8), aad[22 + cidLen] = (uint8_t)inner;
    aadLen = 23 + cidLen;
  } else {
    memcpy(aad, rec + 3, 8);
    aad[8] = rec[0], aad[9] = 0xfe, aad[10] = 0xfd, aad[11] = (uint8_t)(inner >> 8), aad[12] = (uint8_t)inner;
    aadLen = 13;
  }
  EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
  int ok = 1, outl;
  uint8_t tag[8];
  memcpy(tag, rec + h + 8 + inner, 8);
  ok &= EVP_DecryptInit_ex(c, EVP_aes_128_ccm(), NULL, NULL, NULL);
  ok &= EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_CCM_SET_IVLEN, 12, NULL);
  ok &= EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_CCM_SET_TAG, 8, tag);
  ok &= EVP_DecryptInit_ex(c, NULL, NULL, slot + 20, nonce);
  ok &= EVP_DecryptUpdate(c, NULL, &outl, NULL, (int)inner);
  ok &= EVP_DecryptUpdate(c, NULL, &outl, aad, (int)aadLen);
  ok = ok && EVP_DecryptUpdate(c, out, &outl, rec + h + 8, (int)inner) > 0;
  EVP_CIPHER_CTX_free(c);
  if (!ok) return -1;
  int len = (int)inner;
  *type = rec[0];
  if (cidLen) {
    while (len > 0 && out[len - 1] == 0) len--;
    if (len == 0) return -1;
    *type = out[--len];
  }
  return len;
}
