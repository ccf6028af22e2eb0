/**
 * `restore --include` paths are plaintext names of the asset's files, so they
 * must not appear in a workflow's history. The CLI seals the list with age to
 * the tenant's recipients; only a node agent holding the tenant's identity can
 * open it. The workflow carries an opaque base64 string and a count.
 */
import { openBytes, sealBytes, type AgeIdentities } from '../engine/crypto/age';

export async function sealIncludes(paths: string[], recipients: string[]): Promise<string> {
  const sealed = await sealBytes(Buffer.from(JSON.stringify(paths), 'utf8'), recipients);
  return sealed.toString('base64');
}

export async function openIncludes(sealed: string, identities: AgeIdentities): Promise<string[]> {
  const plain = await openBytes(Buffer.from(sealed, 'base64'), identities);
  const list: unknown = JSON.parse(plain.toString('utf8'));
  if (!Array.isArray(list) || !list.every((p) => typeof p === 'string')) throw new TypeError('sealed include list is not a list of paths');
  return list as string[];
}
