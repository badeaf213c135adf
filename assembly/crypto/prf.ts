// TLS 1.2 PRF (RFC 5246 §5): PRF(secret, label, seed) = P_SHA256(secret, label || seed).
import { HMAC_SHA256_CTX_BYTES, hmacSha256Final, hmacSha256Init, hmacSha256Update } from './hmac';
import { zeroize } from './ct';

const CTX: usize = memory.data(<i32>HMAC_SHA256_CTX_BYTES, 16);
const A: usize = memory.data(32, 16);
const BLOCK: usize = memory.data(32, 16);

export function tlsPrfSha256(
  secret: usize, secretLen: i32, label: usize, labelLen: i32,
  seed: usize, seedLen: i32, out: usize, outLen: i32,
): void {
  // A(1) = HMAC(secret, label || seed)
  hmacSha256Init(CTX, secret, secretLen);
  hmacSha256Update(CTX, label, labelLen);
  hmacSha256Update(CTX, seed, seedLen);
  hmacSha256Final(CTX, A);
  let done = 0;
  while (done < outLen) {
    // output block = HMAC(secret, A(i) || label || seed)
    hmacSha256Init(CTX, secret, secretLen);
    hmacSha256Update(CTX, A, 32);
    hmacSha256Update(CTX, label, labelLen);
    hmacSha256Update(CTX, seed, seedLen);
    hmacSha256Final(CTX, BLOCK);
    const n = min(32, outLen - done);
    memory.copy(out + <usize>done, BLOCK, <usize>n);
    done += n;
    if (done < outLen) {
      // A(i+1) = HMAC(secret, A(i))
      hmacSha256Init(CTX, secret, secretLen);
      hmacSha256Update(CTX, A, 32);
      hmacSha256Final(CTX, A);
    }
  }
  zeroize(A, 32);
  zeroize(BLOCK, 32);
}
