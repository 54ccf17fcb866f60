/**
 * Token algorithm ids: the one set the wire format (protocol/SPEC.md
 * "WRITE_SEED", INFO), the keyfob's record and the OTP core all use.
 * SHA-512 has an id on the wire, but the keyfob does not implement it
 * (firmware/otp/hash.ts says why); it refuses WRITE_SEED with 3.
 */
export const ALG_SHA1 = 1;
export const ALG_SHA256 = 2;
export const ALG_SHA512 = 3;
