/**
 * `domain create|import|status|delete`: key domains of firmware 3.x (spec §3.10) over the
 * session's verbs (src/sc-hsm/domains.ts). Shares go through the same import as `dkek import`
 * (its record against a share imported twice, one per domain).
 */
import type { Command } from '../../command.js';
import { flag, int, type Values } from '../../context.js';
import { CliError } from '../../exit-codes.js';
import { importShareFile } from '../dkek/import.js';
import { domainCreateSpec, domainDeleteSpec, domainImportSpec, domainStatusSpec } from '../meta.js';
import { domainJson, domainText } from './format.js';

function reqDomain(v: Values): number {
  const d = int(v, 'domain', 0, 254);
  if (d === undefined) throw new CliError('USAGE_ERROR', '--domain N is required (the key domain number)');
  return d;
}

export const domainCreate: Command = {
  ...domainCreateSpec,
  async run(ctx, v) {
    const domain = reqDomain(v);
    const shares = int(v, 'shares', 1, 255);
    if (shares === undefined)
      throw new CliError('USAGE_ERROR', '--shares K is required (the number of DKEK shares, 1..255)');
    const hsm = await ctx.hsm();
    // range and existence are checked before the PIN is sent (createKeyDomain checks them again)
    await hsm.keyDomainStatus(domain).then((st) => {
      if (st)
        throw new CliError(
          'KEY_DOMAIN_EXISTS',
          `key domain ${domain} exists already (${domainText(st)}); nothing was changed`,
          `import its shares (sc-hsm-ts domain import FILE.pbe --domain ${domain}), or choose an unused domain (sc-hsm-ts domain status)`,
        );
    });
    await ctx.login(hsm, v);
    const st = await hsm.createKeyDomain(domain, shares);
    ctx.out.ok(`key domain ${domain} created`);
    ctx.out.kv('DKEK shares', st.total);
    ctx.out.line(
      `DKEK import pending, ${st.outstanding} share(s) still missing: sc-hsm-ts domain import FILE.pbe --domain ${domain}`,
    );
    return domainJson(st);
  },
};

export const domainImport: Command = {
  ...domainImportSpec,
  async run(ctx, v, [file]) {
    return importShareFile(ctx, v, file!, reqDomain(v));
  },
};

export const domainStatus: Command = {
  ...domainStatusSpec,
  async run(ctx, v) {
    const one = int(v, 'domain', 0, 254);
    const hsm = await ctx.hsm();
    const o = ctx.out;
    if (one !== undefined) {
      const st = await hsm.keyDomainStatus(one);
      o.kv(`Key domain ${one}`, st ? domainText(st) : 'unused');
      return st ? domainJson(st) : { domain: one, unused: true };
    }
    const all = await hsm.listKeyDomains();
    o.kv('Key domains', all.slots);
    for (const d of all.domains) o.kv(`Key domain ${d.domain}`, domainText(d));
    const unused = all.slots - all.domains.length;
    if (unused > 0) o.line(`${unused} unused key domain(s)`);
    return { slots: all.slots, domains: all.domains.map(domainJson) };
  },
};

export const domainDelete: Command = {
  ...domainDeleteSpec,
  async run(ctx, v) {
    const domain = reqDomain(v);
    const dkekOnly = flag(v, 'dkek-only');
    const hsm = await ctx.hsm();
    const st = await hsm.keyDomainStatus(domain);
    if (!st)
      throw new CliError(
        'KEY_DOMAIN_UNUSED',
        `key domain ${domain} is unused: there is nothing to delete; nothing was changed`,
        'sc-hsm-ts domain status lists the domains in use',
      );
    await ctx.confirm(
      dkekOnly
        ? `deleting the DKEK of key domain ${domain} (${domainText(st)}): its keys cannot be wrapped or backed up until all ${st.total} share(s) are imported again.`
        : `deleting key domain ${domain} (${domainText(st)}): keys can no longer be generated in it or unwrapped into it.`,
    );
    // a domain holding keys (their domains are public) is refused before the PIN
    await ctx.login(hsm, v, () => hsm.deleteKeyDomain(domain, { dkekOnly }));
    const after = await hsm.deleteKeyDomain(domain, { dkekOnly });
    if (after) {
      ctx.out.ok(`the DKEK of key domain ${domain} was deleted`);
      ctx.out.line(`DKEK import pending, ${after.outstanding} share(s) still missing`);
      return domainJson(after);
    }
    ctx.out.ok(`key domain ${domain} was deleted`);
    return { domain, deleted: true };
  },
};
