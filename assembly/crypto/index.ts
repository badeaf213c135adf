export * from './aes';
export * from './ccm';
export * from './ct';
export * from './sha256';
export * from './hmac';
export * from './prf';
export * from './drbg';
