import { createHash } from 'node:crypto';
import { hostname, userInfo } from 'node:os';

/**
 * Dapr's "stable" internal gRPC port (`pkg/ports/ports.go`): derived from the app id, working
 * directory, user and host, so a sidecar restarted for the same app comes back on the same port and
 * callers holding its address keep working. The caller falls back to a free port when it is taken.
 */
export function stableInternalPort(appId: string, cwd: string = process.cwd()): number {
  let uid = '';
  try {
    uid = String(userInfo().uid);
  } catch {
    uid = '';
  }
  const digest = createHash('sha256').update(`${appId}|${cwd}|${uid}|${hostname()}`).digest();
  return 47300 + (digest.readUInt16BE(0) % 18235);
}
