/**
 * An audit writer in its own process, as a worker would be: it opens the
 * installation's audit log from a config file (argv[2]), prints READY, waits
 * for a line on stdin (so that several writers start appending together), then
 * appends argv[4] entries as actor argv[3] and prints the sequence numbers it
 * got as JSON.
 */
import { createInterface } from 'node:readline';
import { loadConfig } from '../../config/load';
import { openAuditLog } from '../../audit/open';

const [configPath, writer, count] = process.argv.slice(2) as [string, string, string];
const log = await openAuditLog(loadConfig({ configPath }));
process.stdout.write('READY\n');
await new Promise<void>((resolve) => createInterface({ input: process.stdin }).once('line', () => resolve()));
const seqs: number[] = [];
for (let i = 0; i < Number(count); i++) {
  const r = await log.append({ type: 'backup', action: 'completed', outcome: 'success', actor: { kind: 'workflow', id: writer }, asset: 'llama', details: { n: i } });
  seqs.push(r.seq);
}
process.stdout.write(`${JSON.stringify(seqs)}\n`);
process.exit(0);
