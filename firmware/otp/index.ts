// OTP core: SHA-1/SHA-256, HMAC, HOTP (RFC 4226), TOTP (RFC 6238).
export {};
