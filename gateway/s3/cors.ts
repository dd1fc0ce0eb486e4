// CORS as S3 does it (https://docs.aws.amazon.com/AmazonS3/latest/userguide/cors.html): a bucket's
// rules, the first rule matching a request's origin, method and (for a preflight) requested headers
// answers it, and the headers that answer says. Pure protocol: no storage, no HTTP objects.

export interface CorsRule {
  id?: string;
  allowedOrigins: string[];
  allowedMethods: string[];
  allowedHeaders: string[];
  exposeHeaders: string[];
  maxAgeSeconds?: number;
}

/** S3's own bound on a CORS configuration. */
export const corsRulesMax = 100;
/** The methods a CORS rule may allow. */
export const corsMethods = ['GET', 'PUT', 'HEAD', 'POST', 'DELETE'];

/** `pattern` with at most one `*`, matched case-insensitively for headers, exactly for origins. */
function wildcardMatch(pattern: string, value: string): boolean {
  const star = pattern.indexOf('*');
  if (star < 0) return pattern === value;
  const head = pattern.slice(0, star);
  const tail = pattern.slice(star + 1);
  return value.length >= head.length + tail.length && value.startsWith(head) && value.endsWith(tail);
}

/** The first rule allowing `origin` to use `method` (and send `requestHeaders`, lowercased). */
export function matchCorsRule(
  rules: CorsRule[],
  origin: string,
  method: string,
  requestHeaders: string[] = [],
): CorsRule | undefined {
  return rules.find(
    (rule) =>
      rule.allowedOrigins.some((o) => wildcardMatch(o, origin)) &&
      rule.allowedMethods.includes(method) &&
      requestHeaders.every((h) => rule.allowedHeaders.some((a) => wildcardMatch(a.toLowerCase(), h))),
  );
}

/** The headers a matched rule puts on a response (actual or preflight) to `origin`. */
export function corsResponseHeaders(
  rule: CorsRule,
  origin: string,
  preflight?: { requestHeaders: string[] },
): Record<string, string> {
  // A rule for any origin answers `*` (and so without credentials), as S3 does.
  const anyOrigin = rule.allowedOrigins.includes('*');
  const h: Record<string, string> = {
    'access-control-allow-origin': anyOrigin ? '*' : origin,
    'access-control-allow-methods': rule.allowedMethods.join(', '),
    vary: 'Origin, Access-Control-Request-Headers, Access-Control-Request-Method',
  };
  if (!anyOrigin) h['access-control-allow-credentials'] = 'true';
  if (rule.exposeHeaders.length > 0) h['access-control-expose-headers'] = rule.exposeHeaders.join(', ');
  if (rule.maxAgeSeconds !== undefined) h['access-control-max-age'] = String(rule.maxAgeSeconds);
  if (preflight && preflight.requestHeaders.length > 0)
    h['access-control-allow-headers'] = preflight.requestHeaders.join(', ');
  return h;
}

/** Access-Control-Request-Headers as the lowercased names it lists. */
export function requestedHeaders(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter((h) => h !== '');
}
