// Writes package.json's dependency on the packed tarball and a package-lock.json for a consumer
// project (scripts/check-package.sh), taken from this repository's lock: every package the
// tarball and the consumer's devDependencies need, at the version and integrity `npm ci` put in
// the npm cache, so that `npm ci --offline` installs it without the registry.
// Usage: node scripts/consumer-lock.mjs REPO_ROOT CONSUMER_DIR TARBALL
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';

const [root, dir, tarball] = process.argv.slice(2);
const lock = JSON.parse(readFileSync(join(root, 'package-lock.json'), 'utf8'));
const own = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
const pkgFile = join(dir, 'package.json');
const pkg = JSON.parse(readFileSync(pkgFile, 'utf8'));
const spec = `file:${relative(dir, tarball)}`;
pkg.dependencies = { ...pkg.dependencies, [own.name]: spec };
writeFileSync(pkgFile, `${JSON.stringify(pkg, null, 2)}\n`);

const packages = {
  '': { name: pkg.name, dependencies: pkg.dependencies, devDependencies: pkg.devDependencies ?? {} },
  [`node_modules/${own.name}`]: {
    version: own.version,
    resolved: spec,
    integrity: `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`,
    license: own.license,
    dependencies: own.dependencies,
    optionalDependencies: own.optionalDependencies,
    bin: own.bin,
    engines: own.engines,
  },
};

/** The lock path a package named `name` resolves to from `from` (node's upward search). */
function resolve(from, name) {
  for (let at = from; ; at = at.slice(0, Math.max(0, at.lastIndexOf('/node_modules/')))) {
    const p = `${at ? `${at}/` : ''}node_modules/${name}`;
    if (lock.packages[p]) return p;
    if (!at) throw new Error(`${name} (needed by ${from || 'the root'}) is not in package-lock.json`);
  }
}

function add(path) {
  if (packages[path]) return;
  const entry = lock.packages[path];
  const { dev: _dev, devOptional: _devOptional, optional: _optional, peer: _peer, ...kept } = entry;
  packages[path] = kept;
  for (const name of Object.keys({ ...entry.dependencies, ...entry.optionalDependencies }))
    add(resolve(path, name));
}
for (const name of Object.keys({
  ...own.dependencies,
  ...own.optionalDependencies,
  ...pkg.devDependencies,
})) {
  add(resolve('', name));
}
writeFileSync(
  join(dir, 'package-lock.json'),
  `${JSON.stringify({ name: pkg.name, lockfileVersion: 3, requires: true, packages }, null, 2)}\n`,
);
