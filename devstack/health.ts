import { Connection } from '@temporalio/client';

/**
 * Temporal is healthy when its frontend answers gRPC and the namespace exists
 * (the dev server registers it during startup).
 */
export async function temporalHealthy(address: string, namespace: string, timeoutMs = 3000): Promise<boolean> {
  let conn: Connection | undefined;
  try {
    conn = await Connection.connect({ address, connectTimeout: timeoutMs });
    await conn.withDeadline(Date.now() + timeoutMs, () => conn!.workflowService.describeNamespace({ namespace }));
    return true;
  } catch {
    return false;
  } finally {
    await conn?.close().catch(() => {});
  }
}

/** MinIO liveness and readiness endpoints (no credentials needed). */
export async function minioHealthy(endpoint: string, timeoutMs = 3000): Promise<boolean> {
  try {
    for (const path of ['/minio/health/live', '/minio/health/ready']) {
      const res = await fetch(new URL(path, endpoint), { signal: AbortSignal.timeout(timeoutMs) });
      await res.body?.cancel();
      if (res.status !== 200) return false;
    }
    return true;
  } catch {
    return false;
  }
}
