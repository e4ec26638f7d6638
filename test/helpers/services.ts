/** Test helper: is a real Redis reachable? (Cluster-mode tests skip outside CI when it is not.) */
import { Redis } from 'ioredis';

/** True when Redis at `url` answers PING within half a second. */
export async function redisReachable(url: string): Promise<boolean> {
  const r = new Redis(url, { lazyConnect: true, connectTimeout: 500, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
  r.on('error', () => {});
  try {
    await r.connect();
    return (await r.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}
