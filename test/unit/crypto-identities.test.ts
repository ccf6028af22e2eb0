/**
 * Identity files and secret key files: parsing, clear errors that name the
 * path and line but never the content, permission checks, and redaction of
 * every object that holds key material.
 */
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { generateX25519Identity, identityToRecipient } from 'age-encryption';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  AgeEncryptor,
  AgeIdentities,
  AgeIdentityError,
  AgePayloadReader,
  sealBytes,
  openBytes,
} from '../../engine/crypto/age';
import { assertOwnerOnly, generateAgeIdentityFile, writeSecretFile } from '../../engine/crypto/key-files';
import { age, makeTempDir } from './crypto-helpers';

let tmp: { dir: string; cleanup: () => Promise<void> };

beforeAll(async () => {
  tmp = await makeTempDir();
});

afterAll(async () => {
  await tmp?.cleanup();
});

let n = 0;
async function secretFile(content: string, mode = 0o600): Promise<string> {
  const p = join(tmp.dir, `f${n++}.txt`);
  await writeFile(p, content, { mode });
  await chmod(p, mode);
  return p;
}

/** The secret (or any fragment of it that could identify it) must not be in `s`. */
function expectNoSecret(s: string, secret: string): void {
  expect(s).not.toContain(secret);
  expect(s).not.toContain(secret.slice(16, 40));
  expect(s.toLowerCase()).not.toContain(secret.slice(16, 40).toLowerCase());
}

describe('AgeIdentities.fromFile', () => {
  it('parses comments, blank lines, CRLF and several identities of both kinds', async () => {
    const a = await generateAgeIdentityFile('x25519');
    const b = await generateAgeIdentityFile('hybrid');
    const p = await secretFile(`${a}\n   \n# another\r\n${b.replace(/\n/g, '\r\n')}`);
    const ids = await AgeIdentities.fromFile(p);
    expect(ids.size).toBe(2);
    const pubs = [a, b].map((t) => /^# public key: (\S+)$/m.exec(t)![1]);
    expect(await ids.recipients()).toEqual(pubs);
    expect((await ids.recipients())[1]).toMatch(/^age1pq1/);
  });

  it('generateAgeIdentityFile is age-keygen style and the age CLI accepts it', async () => {
    const text = await generateAgeIdentityFile('x25519');
    expect(text).toMatch(/^# created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\n# public key: age1[a-z0-9]{58}\nAGE-SECRET-KEY-1[A-Z0-9]{58}\n$/);
    const p = join(tmp.dir, 'gen', 'nested', 'id.txt');
    await writeSecretFile(p, text);
    const r = /^# public key: (\S+)$/m.exec(text)![1]!;
    const f = join(tmp.dir, 'gen.age');
    await writeFile(f, await sealBytes(Buffer.from('hi there'), [r]));
    expect((await age(['-d', '-i', p, f])).toString()).toBe('hi there');
    const hybrid = await generateAgeIdentityFile('hybrid');
    expect(hybrid).toMatch(/^# created: .*\n# public key: age1pq1[a-z0-9]+\nAGE-SECRET-KEY-PQ-1[A-Z0-9]+\n$/);
  });

  it('malformed line: names path and line number, never the line', async () => {
    const good = await generateX25519Identity();
    // Corrupt one character in the middle: bad bech32 checksum.
    const i = 30;
    const bad = good.slice(0, i) + (good[i] === 'Q' ? 'P' : 'Q') + good.slice(i + 1);
    const p = await secretFile(`# my keys\n\n${good}\n${bad}\n`);
    const err = await AgeIdentities.fromFile(p).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AgeIdentityError);
    const msg = (err as Error).message;
    expect(msg).toContain(p);
    expect(msg).toContain('line 4');
    expect((err as AgeIdentityError).line).toBe(4);
    expectNoSecret(msg, bad);
    expectNoSecret(msg, good);
    expectNoSecret(inspect(err), bad);
    expectNoSecret(String((err as Error).stack), bad);
  });

  it('other malformed content: unsupported kinds, no identities, lowercase, public key by mistake', async () => {
    const good = await generateX25519Identity();
    const cases: Array<[string, RegExp]> = [
      ['AGE-PLUGIN-YUBIKEY-1QQQQQQ\n', /line 1: age plugin identities are not supported/],
      ['-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n', /line 1: SSH keys/],
      ['age-encryption.org/v1\n-> scrypt x 18\n', /passphrase-encrypted identity files/],
      [`# only comments\n\n`, /contains no identities/],
      [`\n\n${good.toLowerCase()}\n`, /line 3: not an age identity/],
      [`${await identityToRecipient(good)}\n`, /line 1: this is a public recipient/],
      [`${good.slice(0, -3)}\n`, /line 1: malformed age secret key/],
    ];
    for (const [content, re] of cases) {
      const p = await secretFile(content);
      const err = await AgeIdentities.fromFile(p).catch((e: unknown) => e);
      expect(err, content).toBeInstanceOf(AgeIdentityError);
      expect((err as Error).message).toMatch(re);
      expect((err as Error).message).toContain(p);
      expectNoSecret((err as Error).message, good);
    }
  });

  it('missing file and directories: clear errors naming the path', async () => {
    const p = join(tmp.dir, 'nope.txt');
    await expect(AgeIdentities.fromFile(p)).rejects.toThrow(`age identity file not found: ${p}`);
    await expect(AgeIdentities.fromFile(tmp.dir)).rejects.toThrow(/is not a regular file/);
  });

  it('refuses group/world-readable files unless allowInsecurePermissions', async () => {
    const text = await generateAgeIdentityFile('x25519');
    for (const mode of [0o644, 0o640, 0o604]) {
      const p = await secretFile(text, mode);
      const err = await AgeIdentities.fromFile(p).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(AgeIdentityError);
      expect((err as Error).message).toContain(p);
      expect((err as Error).message).toMatch(/accessible by group\/others \(mode 0\d{3}\).*chmod 600/);
      expect((await AgeIdentities.fromFile(p, { allowInsecurePermissions: true })).size).toBe(1);
    }
  });
});

describe('AgeIdentities.fromStrings / merge', () => {
  it('validates, deduplicates and merges', async () => {
    const a = await generateX25519Identity();
    const b = await generateX25519Identity();
    const s = AgeIdentities.fromStrings([a, a, b]);
    expect(s.size).toBe(2);
    expect(AgeIdentities.merge(s, AgeIdentities.fromStrings([b])).size).toBe(2);
    expect(() => AgeIdentities.fromStrings([])).toThrow(/no identities/);
    const err = (() => {
      try {
        AgeIdentities.fromStrings([a, a.slice(0, -1) + 'Q']);
      } catch (e) {
        return e as Error;
      }
    })();
    expect(err?.message).toMatch(/identity #2 is malformed/);
    expectNoSecret(err!.message, a);
  });
});

describe('redaction: nothing that holds key material prints it', () => {
  it('AgeIdentities, AgeEncryptor, AgePayloadReader in String/JSON/inspect/console formats', async () => {
    const secret = await generateX25519Identity();
    const ids = AgeIdentities.fromStrings([secret]);
    const r = await identityToRecipient(secret);
    const enc = await AgeEncryptor.create([r]);
    const file = await sealBytes(Buffer.from('x'), [r]);
    const reader = await AgePayloadReader.open(file, ids);
    expect(String(ids)).toBe('AgeIdentities(1 key)');
    expect(JSON.stringify({ ids })).toBe('{"ids":"AgeIdentities(1 key)"}');
    expect(inspect(ids)).toBe('AgeIdentities(1 key)');
    for (const obj of [ids, enc, reader]) {
      const renderings = [
        String(obj),
        `${obj as object}`,
        JSON.stringify(obj),
        JSON.stringify({ nested: [obj] }),
        inspect(obj),
        inspect(obj, { showHidden: true, depth: 10, customInspect: true }),
        inspect({ deep: { obj } }, { depth: 10 }),
        Object.keys(obj).join(','),
        Object.getOwnPropertyNames(obj).join(','),
      ];
      for (const s of renderings) expectNoSecret(s, secret);
    }
    // It still works after all that.
    expect((await openBytes(file, ids)).toString()).toBe('x');
  });
});

describe('key-files', () => {
  it('writeSecretFile: creates parents, mode 0600, refuses to overwrite', async () => {
    const p = join(tmp.dir, 'a', 'b', 'secret.pem');
    await writeSecretFile(p, 'secret-1');
    expect((await stat(p)).mode & 0o777).toBe(0o600);
    await expect(writeSecretFile(p, 'secret-2')).rejects.toThrow(/refusing to overwrite/);
    expect(await readFile(p, 'utf8')).toBe('secret-1');
    await assertOwnerOnly(p);
  });

  it('assertOwnerOnly: refuses group/other bits, missing files and directories', async () => {
    const p = await secretFile('x', 0o640);
    await expect(assertOwnerOnly(p)).rejects.toThrow(/accessible by group\/others \(mode 0640\)/);
    await expect(assertOwnerOnly(join(tmp.dir, 'missing'))).rejects.toThrow(/not found/);
    await expect(assertOwnerOnly(tmp.dir)).rejects.toThrow(/not a regular file/);
  });
});
