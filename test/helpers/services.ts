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

/**
 * The skip reason of tests that need Redis at `url`: false when it answers; else the reason (and a
 * `# skipping the <what>` line) — or, with CI=true, an error: in CI those tests must run.
 */
export async function redisSkipReason(url: string, what: string): Promise<false | string> {
  if (await redisReachable(url)) return false;
  if (process.env.CI === 'true') throw new Error(`Redis at ${url} is unreachable and CI=true: the ${what} must run`);
  const reason = `Redis at ${url} unreachable (set CI=true to make this a failure)`;
  console.log(`# skipping the ${what}: ${reason}`);
  return reason;
}

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (the OS picks it; the listener is closed
 * before returning). For tests that must pass a concrete port to a child process.
 */
export async function freePort(): Promise<number> {
  const { createServer } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/** Deletes every Redis key matching `pattern` (SCAN, not KEYS), e.g. a test run's key prefix. */
export async function deleteKeys(redis: Redis, pattern: string): Promise<void> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
    if (keys.length) await redis.del(...keys);
    cursor = next;
  } while (cursor !== '0');
}
