/**
 * Whom a client address stands for, where requests are counted per client:
 * the set-up routes' rate limit (host/server/rate-store.ts) and the staff
 * sign-in gate's places per address (staff.ts).
 */
import ipaddr from "ipaddr.js";

/**
 * Whom a request is counted against: an IPv4 client by its address, an IPv6
 * client by its /64, an IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a
 * dual-stack socket reports for an IPv4 client) as that IPv4 address. Why
 * the /64: it is one link's prefix, the least an ISP or host is given (RFC
 * 6177; RFC 4291 §2.5.4: interface ids are 64 bits), and a host picks any of
 * its 2^64 addresses at will (RFC 8981 temporary addresses), so per address
 * one client had no limit at all. Parsed with ipaddr.js, the parser fastify
 * itself uses for req.ip (@fastify/proxy-addr), so every textual form of one
 * address (compressed, zero-padded, upper case) is one key. A string that is
 * not an address (none in practice: req.ip is the socket's or a trusted
 * proxy's) is its own key.
 */
export function clientKey(ip: string): string {
  if (!ipaddr.isValid(ip)) return ip;
  const address = ipaddr.parse(ip);
  if (address.kind() === "ipv4") return address.toString();
  const v6 = address as ipaddr.IPv6;
  if (v6.isIPv4MappedAddress()) return v6.toIPv4Address().toString();
  return new ipaddr.IPv6([...v6.parts.slice(0, 4), 0, 0, 0, 0]).toString() + "/64";
}
