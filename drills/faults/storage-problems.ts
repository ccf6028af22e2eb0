/**
 * What the storage faults need from the installation, checked when a scenario
 * is validated (drills/scenario.ts `scenarioProblems`) — before anything is
 * injected — and again by the injectors themselves.
 */
import type { LoadedConfig } from '../../config/load';
import { minioEndpoint, stackSettings } from '../../devstack/layout';

export type StorageFaultConfig = Pick<LoadedConfig, 'storage' | 'devstack' | 'temporal' | 'source'>;

/** The storage endpoint Lifeline talks to (configured, or the embedded MinIO's). */
export function storageEndpoint(config: StorageFaultConfig): string {
  return config.storage.endpoint ?? minioEndpoint(stackSettings(config as LoadedConfig));
}

/** Why a storage outage cannot be injected here, or null. */
export function storageOutageProblem(config: Pick<LoadedConfig, 'storage'>): string | null {
  return config.storage.endpoint
    ? 'storage is external (storage.endpoint is set): Lifeline can only stop the embedded MinIO; use a network fault with cut: true to cut the link instead'
    : null;
}

/** Why a network fault cannot be injected here, or null. */
export function networkFaultProblem(config: StorageFaultConfig): string | null {
  let url: URL;
  try {
    url = new URL(storageEndpoint(config));
  } catch {
    return 'storage.endpoint is not a URL';
  }
  return url.protocol === 'http:'
    ? null
    : `storage.endpoint uses ${url.protocol.replace(':', '')}: the fault proxy can only stand in front of a plain-HTTP endpoint (the embedded MinIO, or an S3 endpoint without TLS)`;
}
