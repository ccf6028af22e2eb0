import { Client, Connection } from '@temporalio/client';
import type { LoadedConfig } from '../config/load';
import { stackSettings, temporalAddress } from '../devstack/layout';
import { temporalDataConverter } from './codec';

/** Where Temporal is for this config: the external address, or the embedded dev server. */
export function temporalTarget(config: LoadedConfig): { address: string; namespace: string; embedded: boolean } {
  if (config.temporal.address) return { address: config.temporal.address, namespace: config.temporal.namespace, embedded: false };
  return { address: temporalAddress(stackSettings(config)), namespace: config.temporal.namespace, embedded: true };
}

/** A workflow client for this config (payloads encrypted when the config says so). Close `connection` when done. */
export async function connectClient(config: LoadedConfig): Promise<{ client: Client; connection: Connection }> {
  const { address, namespace } = temporalTarget(config);
  const dataConverter = await temporalDataConverter(config);
  const connection = await Connection.connect({ address, connectTimeout: '10 seconds' });
  return { client: new Client({ connection, namespace, ...(dataConverter ? { dataConverter } : {}) }), connection };
}
