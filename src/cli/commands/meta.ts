/**
 * What every command is, without its implementation: name, arguments, options and the texts of
 * `--help`. The registry (src/cli/registry.ts) reads these; each command module in this directory
 * adds its `run` to its spec. Kept in one module, free of imports beyond src/cli/command.ts, so that
 * `sc-hsm-ts --help` and `COMMAND --help` load nothing else (cold start: bench/startup.bench.ts).
 */

import { type CommandSpec, SECRET_HELP } from '../command.js';

// options several commands share
const PIN = { type: 'string', arg: 'SECRET', help: `user PIN (${SECRET_HELP})` } as const;

const SO_PIN = { type: 'string', arg: 'SECRET', help: `SO-PIN, 16 hex characters (${SECRET_HELP})` } as const;

const KEY_REF = {
  type: 'string',
  arg: 'N',
  help: 'key reference of the key pair (see `sc-hsm-ts keys`)',
} as const;

const SUBJECT = {
  type: 'string',
  arg: 'DN',
  help: 'subject, e.g. "CN=Example Root CA, O=Example, C=DE" (RFC 4514: TYPE=value, \\, for a comma)',
} as const;

const HASH = {
  type: 'string',
  arg: 'HASH',
  help: 'signature hash: sha256 (default), sha384, sha512, sha1',
} as const;

const PSS = {
  type: 'boolean',
  help: 'RSA keys: sign with RSA-PSS (salt length = hash length) instead of PKCS#1 v1.5',
} as const;

const FORCE = { type: 'boolean', help: 'replace an existing output file' } as const;

const NEW_PIN = { ...PIN, help: `new user PIN, 6-15 printable ASCII characters (${SECRET_HELP})` } as const;

/** Any key's reference, as `keys` lists it (delete-key, wrap). */
const LISTED_KEY_REF = {
  type: 'string',
  arg: 'N',
  help: 'key reference (first column of `sc-hsm-ts keys`)',
} as const;

const KEY_LABEL = {
  type: 'string',
  arg: 'LABEL',
  help: 'key label (1-32 bytes of UTF-8, no control characters)',
} as const;

const PEM_OUT = { type: 'string', arg: 'FILE', path: 'output', help: 'PEM output file' } as const;

/** What a forced replace may do with the key it replaces (unwrap, restore). */
const REPLACE_OPTIONS = {
  'save-replaced': {
    type: 'string',
    arg: 'DIR',
    path: 'output-dir',
    help: 'with --force: where each replaced key\u2019s wrapped copy (.bin, 0600) is written before the key is touched (default: beside the input)',
  },
  'i-understand-the-old-key-is-lost': {
    type: 'boolean',
    help: 'with --force: replace also a key that may not be wrapped first (it is lost if the new key is refused)',
  },
} as const;

/** The password of one share file, or the custodians' shares of it (dkek import/inspect, domain import). */
const SHARE_PASSWORD_OPTIONS = {
  password: { type: 'string', arg: 'SECRET', help: `password of the share file (${SECRET_HELP})` },
  shares: {
    type: 'string',
    multiple: true,
    arg: 'FILE',
    path: 'input',
    help: 'a custodian\u2019s password share (text file)',
  },
} as const;

const DKEK_OPTIONS = {
  dkek: {
    type: 'string',
    multiple: true,
    arg: 'FILE.pbe',
    path: 'input',
    help: 'DKEK share file (all shares of the DKEK)',
  },
  password: {
    type: 'string',
    multiple: true,
    arg: 'SECRET',
    help: `password per --dkek file, same order (${SECRET_HELP})`,
  },
} as const;

export const readersSpec: CommandSpec = {
  name: 'readers',
  summary: 'List the PC/SC readers and whether each holds a SmartCard-HSM (and whether it is initialized).',
  description:
    'The number in the first column is what --reader takes. Looking at a SmartCard-HSM selects its applet,\n' +
    'which logs out a PIN another program verified.',
};

export const statusSpec: CommandSpec = {
  name: 'status',
  summary:
    'Firmware, options, PIN tries, DKEK shares and key check value, label and serial (what bare sc-hsm-tool shows).',
  description: 'Costs no PIN try and needs no PIN.',
  examples: ['sc-hsm-ts status', 'sc-hsm-ts status --json'],
};

export const initSpec: CommandSpec = {
  name: 'init',
  summary: 'Initialize (or re-initialize) the device: SO-PIN, user PIN, label, DKEK shares. ERASES ALL KEYS.',
  description: [
    'Everything is checked on this computer before anything is sent: the SO-PIN is exactly 16 hex',
    'characters (a malformed SO-PIN would make the device unusable), the user PIN 6-15 printable ASCII',
    'characters, the retry counter at most 3/5/10 for PINs of 6/7/8+ characters. With --pin-retry 1 every',
    'wrong PIN blocks the user PIN; the card does not report the counter, so init records the device on',
    'this computer (~/.config/sc-hsm-ts/pin-retry.json) and elsewhere commands need --last-try.',
    'On a device that is already initialized --so-pin must be the current SO-PIN (it cannot be changed',
    'here: use so-pin change).',
    '',
    '--dkek-shares N  N >= 1: the DKEK is made of N share files (dkek create / dkek import): keys can be',
    '                 backed up and restored onto a replacement device. 0: the card makes a random DKEK:',
    '                 keys can never leave this device. Omitted: no DKEK at all, no backup possible.',
    'With PC/SC the reader must be named (--reader) because this step erases the device.',
  ].join('\n'),
  options: {
    'so-pin': SO_PIN,
    pin: {
      type: 'string',
      arg: 'SECRET',
      help: `initial user PIN, 6-15 printable ASCII characters (${SECRET_HELP})`,
    },
    label: { type: 'string', arg: 'LABEL', help: 'token label (1-32 bytes of UTF-8, no control characters)' },
    'dkek-shares': {
      type: 'string',
      arg: 'N',
      help: 'number of DKEK shares (0 = random DKEK, keys never leave the device)',
    },
    'key-domains': {
      type: 'string',
      arg: 'N',
      help: 'number of key domains, 1..255 (firmware 3.x; domain 0 is the DKEK of --dkek-shares, the others start unused: domain create)',
    },
    'pin-retry': {
      type: 'string',
      arg: 'N',
      help: 'user PIN retry counter (default 3; at most 3/5/10 for a PIN of 6/7/8+ characters)',
    },
    'generate-so-pin': {
      type: 'boolean',
      help: 'generate a random SO-PIN and print it once (first initialization only)',
    },
    'transport-pin': {
      type: 'boolean',
      help: 'transport-PIN mode (option 0002): --pin is a transport PIN the owner replaces with pin change before any use (no --label)',
    },
    pka: {
      type: 'string',
      arg: 'N',
      help: 'public key authentication: N custodians\u2019 public keys (1-90) replace the user PIN (no --label)',
    },
    required: {
      type: 'string',
      arg: 'M',
      help: 'with --pka: how many of the N custodians must authenticate (1..N)',
    },
    'pka-and-pin': {
      type: 'boolean',
      help: 'with --pka: the user PIN AND M custodians are needed (option 0010)',
    },
    'session-pin': {
      type: 'boolean',
      help: 'enable the session PIN (option 0004): pin session gives one inside secure messaging, kept until reset',
    },
  },
  examples: [
    'sc-hsm-ts init --reader 0 --so-pin env:SO_PIN --pin env:PIN --label CA-1 --dkek-shares 1',
    'sc-hsm-ts init --reader 0 --so-pin env:SO_PIN --pin env:TRANSPORT_PIN --transport-pin',
    'sc-hsm-ts init --reader 0 --so-pin env:SO_PIN --pin env:PIN --pka 3 --required 2 --dkek-shares 1',
  ],
};

export const dkekCreateSpec: CommandSpec = {
  name: 'dkek create',
  args: 'FILE.pbe',
  positionals: [1, 1],
  argPath: 'output',
  summary:
    'Create a DKEK share file (32 random bytes, password-encrypted, sc-hsm-tool --create-dkek-share format).',
  description: [
    'The share is made on this computer from node:crypto randomBytes and written to FILE.pbe, which must',
    'not exist. Keep the file and its password apart and safe: without them wrapped keys cannot be',
    'restored. With --threshold T --total N the password is a random 8-byte value split into N',
    'custodian shares of which any T recover it (printed once, like sc-hsm-tool; give each custodian',
    'their block, it is also the file format `dkek import --shares` reads).',
  ].join('\n'),
  options: {
    password: {
      type: 'string',
      arg: 'SECRET',
      help: `password for the file, at least 6 characters (${SECRET_HELP})`,
    },
    threshold: { type: 'string', arg: 'T', help: 'password shares needed to recover the password (2..N)' },
    total: { type: 'string', arg: 'N', help: 'number of password shares (custodians), at least 3' },
  },
  examples: ['sc-hsm-ts dkek create dkek-share-1.pbe --password env:DKEK_PASSWORD'],
};

export const dkekImportSpec: CommandSpec = {
  name: 'dkek import',
  args: 'FILE.pbe',
  positionals: [1, 1],
  argPath: 'input',
  summary: 'Import a DKEK share into the device (sc-hsm-tool --import-dkek-share).',
  description: [
    'The password is given with --password, or rebuilt from custodians\u2019 password shares with',
    '--shares FILE (repeat for each share; the text blocks `dkek create --threshold` printed).',
    'Before the slow key derivation the device is checked to be waiting for a share. A share already',
    'imported into this DKEK (which would cancel it out) is refused before anything is sent: each import',
    'is recorded as two fingerprints (the file\u2019s SHA-256 and the share\u2019s KCV, never the share) beside',
    'the --sim state file or in $XDG_STATE_HOME/sc-hsm-ts (~/.local/state/sc-hsm-ts), written before the',
    'share is sent (a record that cannot be written stops the import). After the last share',
    'a DKEK anyone could compute (all zero, or equal to one share) is reported (DKEK_DEGENERATE, exit 6).',
  ].join('\n'),
  options: { ...SHARE_PASSWORD_OPTIONS },
  examples: ['sc-hsm-ts dkek import dkek-share-1.pbe --password env:DKEK_PASSWORD'],
};

export const dkekInspectSpec: CommandSpec = {
  name: 'dkek inspect',
  args: 'FILE.pbe',
  positionals: [1, 1],
  argPath: 'input',
  summary: 'Check a DKEK share file offline: decrypt it and print its key check value (no device needed).',
  description:
    'For a DKEK of one share this is the KCV `status` shows; for several shares compare after importing all.',
  options: { ...SHARE_PASSWORD_OPTIONS },
};

export const dkekResplitSpec: CommandSpec = {
  name: 'dkek resplit',
  args: 'FILE.pbe',
  positionals: [1, 1],
  argPath: 'input',
  summary:
    'New custodian set: rebuild the password from old password shares and split it anew. The share file is untouched.',
  description:
    'The old shares are first checked by decrypting FILE.pbe with the rebuilt password; only then are\n' +
    'the new shares printed. The old shares stay valid too: destroy them after the handover.',
  options: {
    shares: {
      type: 'string',
      multiple: true,
      arg: 'FILE',
      path: 'input',
      help: 'an old custodian\u2019s password share (text file)',
    },
    threshold: { type: 'string', arg: 'T', help: 'new threshold (2..N)' },
    total: { type: 'string', arg: 'N', help: 'new number of shares (at least 3)' },
  },
};

export const keysSpec: CommandSpec = {
  name: 'keys',
  summary:
    'List every key: key reference, PKCS#15 ID and label side by side, type, size or curve, usage, certificate.',
  description: [
    'This is the "Determine Key References" step of the guide. Needs no PIN: key descriptions and',
    'certificates are public on the SmartCard-HSM. --pin (as for dump) verifies the user PIN before the',
    'list is read; it adds nothing to the list, it checks the PIN (tries left read first, as everywhere).',
  ].join('\n'),
  options: {
    pin: {
      type: 'string',
      arg: 'SECRET',
      help: `user PIN, verified before the list is read; the list is the same (${SECRET_HELP})`,
    },
  },
};

export const keygenSpec: CommandSpec = {
  name: 'keygen',
  summary: 'Generate a key pair (or AES key) on the device and write its PKCS#15 description as OpenSC does.',
  options: {
    type: {
      type: 'string',
      arg: 'TYPE',
      help: 'rsa:1024|1536|2048|3072|4096, ec:prime256v1|secp384r1|secp521r1|brainpoolP256r1|…, aes:128|192|256',
    },
    label: KEY_LABEL,
    id: {
      type: 'string',
      arg: 'HEX',
      help: 'PKCS#15 ID (default: SHA-1 of the public key, as OpenSC; AES keys: 16 random bytes); refused if another key has it',
    },
    'key-ref': { type: 'string', arg: 'N', help: 'key reference 1-255 (default: the lowest free one)' },
    domain: {
      type: 'string',
      arg: 'N',
      help: 'key domain (tag 92): the key is wrapped under that domain’s DKEK (default 0; see domain create)',
    },
    algorithms: {
      type: 'string',
      arg: 'LIST',
      help: 'the only algorithms the key may ever be used with, comma-separated, e.g. ECDSA-SHA256,WRAP (names in docs/cli.md); WRAP must be listed for wrap/backup',
    },
    'use-counter': {
      type: 'string',
      arg: 'N',
      help: 'private-key operations allowed, 1-4294967295; then the device refuses the key ("key use counter exhausted")',
    },
    'derive-from': {
      type: 'string',
      arg: 'N',
      help: "derive a new EC key from the EC key at key reference N (private key + tweak mod n) instead of generating one; it keeps N's key domain, algorithm list and uses left (virtual card; warned if the card does not); with --tweak, --key-ref, --label",
    },
    tweak: {
      type: 'string',
      arg: 'HEX',
      help: 'with --derive-from: the value added to the private key, big-endian hex, not zero, below the curve order',
    },
    pin: PIN,
  },
  examples: [
    'sc-hsm-ts keygen --type rsa:2048 --label ca-key --pin env:PIN',
    'sc-hsm-ts keygen --type ec:prime256v1 --label signer --algorithms ECDSA-SHA256,WRAP --use-counter 1000 --pin env:PIN',
    'sc-hsm-ts keygen --derive-from 1 --tweak 0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f20 --key-ref 7 --label child --pin env:PIN',
  ],
};

const AES_KEY_REF = {
  type: 'string',
  arg: 'N',
  help: 'key reference of the AES key (see `sc-hsm-ts keys`; made with `keygen --type aes:256`)',
} as const;

const AES_CBC_DESCRIPTION = [
  'AES-CBC with PKCS#7 padding: the card encrypts (CIPHER, 1 KB per command), the IV and the padding',
  'are applied on this computer, so the result is standard AES-CBC (openssl enc -aes-256-cbc -K … -iv …).',
  'Without --iv, encrypt takes a random IV and writes it as the first 16 bytes of --out, and decrypt',
  'reads it from the first 16 bytes of --in; with --iv the file holds the ciphertext only. --out is',
  'created exclusively (mode 0600; --force replaces it) and written only when the whole input is done.',
  'Input: 16 MiB at most.',
].join('\n');

export const aesEncryptSpec: CommandSpec = {
  name: 'aes encrypt',
  summary: 'Encrypt a file with an AES key of the device (AES-CBC, PKCS#7; random IV prepended unless --iv).',
  description: AES_CBC_DESCRIPTION,
  options: {
    'key-ref': AES_KEY_REF,
    in: { type: 'string', arg: 'FILE', path: 'input', help: 'the file to encrypt' },
    out: {
      type: 'string',
      arg: 'FILE',
      path: 'output',
      help: 'the encrypted file (must not exist unless --force)',
    },
    iv: {
      type: 'string',
      arg: 'HEX',
      help: '16-byte IV as 32 hex digits (default: random, written before the ciphertext)',
    },
    force: FORCE,
    pin: PIN,
  },
  examples: ['sc-hsm-ts aes encrypt --key-ref 3 --in secret.txt --out secret.enc --pin env:PIN'],
};

export const aesDecryptSpec: CommandSpec = {
  name: 'aes decrypt',
  summary: 'Decrypt a file with an AES key of the device (AES-CBC, PKCS#7; IV from the file unless --iv).',
  description: AES_CBC_DESCRIPTION,
  options: {
    'key-ref': AES_KEY_REF,
    in: { type: 'string', arg: 'FILE', path: 'input', help: 'the encrypted file' },
    out: {
      type: 'string',
      arg: 'FILE',
      path: 'output',
      help: 'the decrypted file, mode 0600 (must not exist unless --force)',
    },
    iv: {
      type: 'string',
      arg: 'HEX',
      help: '16-byte IV as 32 hex digits (default: the first 16 bytes of --in)',
    },
    force: FORCE,
    pin: PIN,
  },
  examples: ['sc-hsm-ts aes decrypt --key-ref 3 --in secret.enc --out secret.txt --pin env:PIN'],
};

export const aesCmacSpec: CommandSpec = {
  name: 'aes cmac',
  summary:
    'AES-CMAC of a file (at most 1024 bytes) computed by an AES key of the device; prints 32 hex digits.',
  options: {
    'key-ref': AES_KEY_REF,
    in: {
      type: 'string',
      arg: 'FILE',
      path: 'input',
      help: 'the message (at most 1024 bytes: one card command)',
    },
    pin: PIN,
  },
  examples: ['sc-hsm-ts aes cmac --key-ref 3 --in message.bin --pin env:PIN'],
};

export const deleteKeySpec: CommandSpec = {
  name: 'delete-key',
  summary: 'Delete a key, its description and its certificate (asks for confirmation).',
  options: {
    'key-ref': LISTED_KEY_REF,
    pin: PIN,
  },
};

export const wrapSpec: CommandSpec = {
  name: 'wrap',
  summary: 'Export one key encrypted under the DKEK into a .bin file (sc-hsm-tool --wrap-key format).',
  options: {
    'key-ref': LISTED_KEY_REF,
    out: {
      type: 'string',
      arg: 'FILE.bin',
      path: 'output',
      help: 'output file (must not exist unless --force)',
    },
    force: FORCE,
    pin: PIN,
  },
  examples: ['sc-hsm-ts wrap --key-ref 1 --out key1.bin --pin env:PIN'],
};

export const unwrapSpec: CommandSpec = {
  name: 'unwrap',
  args: 'FILE.bin',
  positionals: [1, 1],
  argPath: 'input',
  summary: 'Import a key from a .bin wrap file onto the device (sc-hsm-tool --unwrap-key).',
  description: [
    'Before anything is written the whole file is checked (description, public key), its key check',
    'value compared with the device\u2019s DKEK, the key reference checked to be free and the key ID to be',
    'no other key\u2019s; --force replaces a key there (after confirmation). A replaced key is wrapped',
    'first, its copy written beside FILE (or into --save-replaced DIR) before anything is deleted, and',
    'put back if the new one is refused; a key that may not be wrapped is replaced only with',
    '--i-understand-the-old-key-is-lost. The output names the device (serial, label) and the copy.',
  ].join('\n'),
  options: {
    'key-ref': { type: 'string', arg: 'N', help: 'key reference to restore the key to' },
    id: {
      type: 'string',
      arg: 'HEX',
      help: 'PKCS#15 ID the key gets on this device instead of the file\u2019s (when another key has that ID); refused if another key has it',
    },
    domain: {
      type: 'string',
      arg: 'N',
      help: 'the key domain the key must land in: its DKEK must have the wrapped key’s KCV (default: the domain that has it)',
    },
    force: { type: 'boolean', help: 'replace a key at that key reference' },
    ...REPLACE_OPTIONS,
    pin: PIN,
  },
};

export const backupSpec: CommandSpec = {
  name: 'backup',
  args: 'DIR',
  positionals: [1, 1],
  argPath: 'output-dir',
  summary:
    'Back up every key: one .bin wrap file per key plus manifest.json (device KCV, per key ref, ID, label, type, SHA-256).',
  description:
    'Files are written atomically; before success is reported every file is read back, its hash\n' +
    'compared and its key blob decoded and checked against the device\u2019s key check value.\n' +
    'Run again after an interruption it resumes in the same directory; a directory holding another\n' +
    'device\u2019s backup (or keys this device no longer has) is refused. The manifest names the device.\n' +
    'The backup is useless without the DKEK share files and their passwords: keep them apart.',
  options: {
    force: { type: 'boolean', help: 'replace this device\u2019s earlier backup in that directory' },
    'skip-unwrappable': {
      type: 'boolean',
      help: 'back up the other keys when some may not be wrapped (no WRAP in their algorithm list); the manifest lists those as skipped',
    },
    pin: PIN,
  },
  examples: ['sc-hsm-ts backup /media/backup/ca-hsm --pin env:PIN'],
};

export const restoreSpec: CommandSpec = {
  name: 'restore',
  args: 'DIR',
  positionals: [1, 1],
  argPath: 'input-dir',
  summary: 'Restore a backup directory onto this (or a replacement) device.',
  description: [
    'Checked before anything is written: every file\u2019s SHA-256 against the manifest, every blob\u2019s key',
    'check value and the device\u2019s DKEK key check value against the manifest, and that each key',
    'reference is free. A key reference already holding the same key (same public key) is left as it',
    'is, so an interrupted restore is completed by running it again (restore-progress.json in DIR',
    'notes a restore started on another device). An AES key with the backup\u2019s label, ID, type and',
    'size is left as it is too, reported unverified: its value cannot be compared on the host (only',
    '--force replaces it). A reference holding another key is refused unless',
    '--force (which replaces it after confirmation; each replaced key is wrapped first, its copy',
    'written into DIR (or --save-replaced DIR) before anything is deleted, and put back if restoring',
    'over it fails). A damaged file or a key ID another key has is refused before anything is sent.',
    'The output names the device (serial, label).',
  ].join('\n'),
  options: {
    force: { type: 'boolean', help: 'replace different keys at the backup\u2019s key references' },
    ...REPLACE_OPTIONS,
    pin: PIN,
  },
};

export const importKeySpec: CommandSpec = {
  name: 'import-key',
  args: 'FILE.pem',
  positionals: [1, 1],
  argPath: 'input',
  summary: 'Put an existing RSA or EC private key (PEM/DER, PKCS#8 or traditional) onto the device.',
  description: [
    'The device only accepts keys wrapped under its DKEK, so the DKEK share files and their passwords',
    'are needed: the key blob is built on this computer (encryptKeyBlob), checked against the device\u2019s',
    'key check value, and unwrapped onto --key-ref with a PKCS#15 description (label, ID).',
  ].join('\n'),
  options: {
    'key-ref': { type: 'string', arg: 'N', help: 'free key reference 1-255' },
    domain: {
      type: 'string',
      arg: 'N',
      help: 'key domain whose DKEK the --dkek shares make (default 0): the key lands in that domain',
    },
    label: KEY_LABEL,
    id: {
      type: 'string',
      arg: 'HEX',
      help: 'PKCS#15 ID (default: SHA-1 of the public key, as OpenSC); refused if another key has it',
    },
    dkek: {
      type: 'string',
      multiple: true,
      arg: 'FILE.pbe',
      path: 'input',
      help: 'DKEK share file (all shares of the device)',
    },
    password: DKEK_OPTIONS.password,
    'key-password': {
      type: 'string',
      arg: 'SECRET',
      help: `passphrase of an encrypted PEM (${SECRET_HELP})`,
    },
    algorithms: {
      type: 'string',
      arg: 'LIST',
      help: 'the only algorithms the key may be used with on the device, comma-separated (as keygen --algorithms); WRAP for wrap/backup',
    },
    force: { type: 'boolean', help: 'replace a key at --key-ref' },
    pin: PIN,
  },
};

export const wrappedInspectSpec: CommandSpec = {
  name: 'wrapped inspect',
  args: 'FILE.bin',
  positionals: [1, 1],
  argPath: 'input',
  summary:
    'Show what a .bin wrap file holds: KCV, key type, algorithms, label, ID, certificate; MAC checked with --dkek.',
  options: { ...DKEK_OPTIONS },
};

export const wrappedExportSpec: CommandSpec = {
  name: 'wrapped export',
  args: 'FILE.bin',
  positionals: [1, 1],
  argPath: 'input',
  summary:
    'Disaster recovery: decrypt a wrapped key with the DKEK shares and write the PRIVATE KEY in clear (PEM, mode 0600).',
  description:
    'Only for when no SmartCard-HSM is available any more. The key then exists outside any HSM:\n' +
    'protect the output file and destroy it when done. Needs --i-understand-this-exports-a-private-key.',
  options: {
    ...DKEK_OPTIONS,
    out: { type: 'string', arg: 'KEY.pem', path: 'output', help: 'output file (must not exist)' },
    'i-understand-this-exports-a-private-key': {
      type: 'boolean',
      help: 'required: you know the key leaves the HSM',
    },
  },
};

export const pinStatusSpec: CommandSpec = {
  name: 'pin status',
  summary: 'Tries left for the user PIN and the SO-PIN (costs no try).',
};

export const pinVerifySpec: CommandSpec = {
  name: 'pin verify',
  summary: 'Check the user PIN. The tries left are read first; a blocked PIN or one try left is not sent.',
  options: { pin: PIN },
};

export const pinSessionSpec: CommandSpec = {
  name: 'pin session',
  summary:
    'Get a session PIN (needs --secure and a device initialized with --session-pin) and write it to a new file.',
  description: [
    'Inside secure messaging, after the user PIN is verified, the card gives a session PIN (spec 3.20):',
    'later commands with --secure --session-pin file:FILE log in with it instead of the PIN until the card',
    'is reset (unplugged, or reset by a reader or another application). The file is created (mode 0600,',
    'never replaced) with the session PIN in hex; it is a secret like the PIN. Without --secure nothing is sent.',
  ].join('\n'),
  options: {
    pin: PIN,
    out: {
      type: 'string',
      arg: 'FILE',
      path: 'output',
      help: 'file to create for the session PIN (never replaced)',
    },
  },
  examples: ['sc-hsm-ts pin session --secure --pin env:PIN --out ~/.hsm-session-pin'],
};

export const pinChangeSpec: CommandSpec = {
  name: 'pin change',
  summary: 'Change the user PIN (also replaces a transport PIN).',
  options: {
    pin: { ...PIN, help: `current user PIN (${SECRET_HELP})` },
    'new-pin': NEW_PIN,
  },
};

export const pinUnblockSpec: CommandSpec = {
  name: 'pin unblock',
  summary:
    'Unblock the user PIN with the SO-PIN and set a new user PIN (pkcs11-tool --login-type so --init-pin).',
  description:
    'With --reset-only the retry counter is reset and the old PIN stays. The SO-PIN has 15 tries and a\n' +
    'blocked SO-PIN cannot be recovered: its tries left are checked first and one try left is refused\n' +
    'without --last-try.',
  options: {
    'so-pin': SO_PIN,
    'new-pin': NEW_PIN,
    'reset-only': { type: 'boolean', help: 'only reset the retry counter, keep the current user PIN' },
  },
};

export const soPinChangeSpec: CommandSpec = {
  name: 'so-pin change',
  summary: 'Change the SO-PIN (both exactly 16 hex characters).',
  description: 'Record the new SO-PIN before you run this: a lost SO-PIN cannot be recovered.',
  options: {
    'so-pin': { ...SO_PIN, help: `current SO-PIN (${SECRET_HELP})` },
    'new-so-pin': { ...SO_PIN, help: `new SO-PIN, 16 hex characters (${SECRET_HELP})` },
  },
};

export const pkaStatusSpec: CommandSpec = {
  name: 'pka status',
  summary:
    'Public key authentication: N, missing, M, authenticated, and each registered key (sc-hsm-tool --public-key-auth-status).',
  description:
    'Costs no PIN try and needs no PIN. The authenticated count is this session\u2019s: 0 in a new command.',
  examples: ['sc-hsm-ts pka status', 'sc-hsm-ts pka status --json'],
};

export const pkaRegisterSpec: CommandSpec = {
  name: 'pka register',
  args: 'FILE',
  positionals: [1, 1],
  argPath: 'input',
  summary:
    'Register a custodian\u2019s public key from an sc-hsm-tool --export-for-pub-key-auth / pka export file.',
  description: [
    'The file (old or new format) is checked on this computer first: whole, not registered yet, a slot free.',
    'Then the device verifies the custodian\u2019s device chain (MSE SET DST, PSO VERIFY CERTIFICATE) as',
    'OpenSC does, and registers the key; a chain that does not end at the device\u2019s root is refused.',
    'A registered key cannot be removed (only re-initialization clears them).',
  ].join('\n'),
  examples: ['sc-hsm-ts pka register alice.pka'],
};

export const pkaExportSpec: CommandSpec = {
  name: 'pka export',
  summary:
    'Write key KEYREF of this device as a public key authentication file in sc-hsm-tool\u2019s format (to register elsewhere).',
  description:
    'The file is 30 { EF CE<ref> (the key\u2019s request, signed by this device), EF 2F02 }, byte for byte what\n' +
    'sc-hsm-tool --export-for-pub-key-auth writes. It holds no secret. Only a key generated on a\n' +
    'SmartCard-HSM (whose request the device signed) can be exported.',
  options: {
    'key-ref': { type: 'string', arg: 'N', help: 'key reference 1-255 (`sc-hsm-ts keys`)' },
    out: { type: 'string', arg: 'FILE', path: 'output', help: 'file to create (never replaced)' },
  },
  examples: ['sc-hsm-ts pka export --key-ref 1 --out alice.pka'],
};

export const pkaRespondSpec: CommandSpec = {
  name: 'pka respond',
  args: 'CHALLENGE',
  positionals: [1, 1],
  argPath: 'input',
  summary:
    'Custodian side: answer a target device\u2019s challenge file with your own token\u2019s key KEYREF (SIGN over SHA-256(device CHR ‖ challenge)).',
  description: [
    'Run it on the custodian\u2019s machine with the custodian\u2019s SmartCard-HSM (or on the same host with the',
    'other reader). It prints the target device named in the challenge: confirm it with the operator by',
    'another channel before you answer. The answer is good for that device and that challenge only.',
  ].join('\n'),
  options: {
    'key-ref': { type: 'string', arg: 'N', help: 'the key you registered on the target (`sc-hsm-ts keys`)' },
    out: { type: 'string', arg: 'FILE', path: 'output', help: 'response file to create (never replaced)' },
    pin: { ...PIN, help: `your token\u2019s user PIN (${SECRET_HELP})` },
  },
  examples: [
    'sc-hsm-ts pka respond challenge.json --reader 1 --key-ref 1 --out alice.response.json --pin env:PIN',
  ],
};

export const pkaAuthenticateSpec: CommandSpec = {
  name: 'pka authenticate',
  args: '[-- COMMAND…]',
  positionals: [0, 4096],
  summary:
    'Target side: write a challenge, take the custodians\u2019 responses, authenticate, then run COMMAND in the same session.',
  description: [
    'The device\u2019s authentication lives in its session, which ends with this process. So one command holds',
    'it: it first rehearses COMMAND (only public reads sent: what it would refuse is refused now), writes the',
    'challenge to --challenge-out, takes each --response file once it is complete (up to --wait seconds;',
    'custodians run pka respond meanwhile), checks it against the challenge, sends it (MSE SET AT, EXTERNAL',
    'AUTHENTICATE; a refused answer is reported, the others count) and then runs COMMAND (an sc-hsm-ts',
    'command that takes --pin, with its options, no global options) on the same device in the same session.',
    'Without COMMAND it only proves the answers.',
  ].join('\n'),
  options: {
    'challenge-out': {
      type: 'string',
      arg: 'FILE',
      path: 'output',
      help: 'challenge file to create for the custodians (never replaced)',
    },
    response: {
      type: 'string',
      arg: 'FILE',
      multiple: true,
      help: 'a custodian\u2019s response file (repeat for each); waited for',
    },
    wait: {
      type: 'string',
      arg: 'SECONDS',
      help: 'how long to wait for the responses, 1 to 86400 (default 600)',
    },
  },
  examples: [
    'sc-hsm-ts pka authenticate --challenge-out c.json --response a.json --response b.json -- keygen --type ec:prime256v1 --label ca',
  ],
};

export const verifyDeviceSpec: CommandSpec = {
  name: 'verify-device',
  summary:
    'Check that the device is a genuine SmartCard-HSM: its certificate chain up to the SmartCard-HSM Root CA.',
  description:
    'Verdicts: genuine (chain verifies up to DESRCACC100001), virtual (the sc-hsm-ts virtual card),\n' +
    'untrusted (ends at an unknown root), broken (a signature does not verify). Exit 0 for genuine,\n' +
    'and for virtual when the device is the virtual card (--sim); otherwise exit 1. Needs no PIN.',
  examples: ['sc-hsm-ts verify-device', 'sc-hsm-ts verify-device --json'],
};

export const csrSpec: CommandSpec = {
  name: 'csr',
  summary: 'Create a PKCS#10 certificate request (CSR) for a device key, signed on the device.',
  description: 'The request is written as PEM to --out (atomically) or to stdout.',
  options: {
    'key-ref': KEY_REF,
    subject: SUBJECT,
    out: PEM_OUT,
    hash: HASH,
    pss: PSS,
    force: FORCE,
    pin: PIN,
  },
  examples: [
    'sc-hsm-ts csr --key-ref 1 --subject "CN=Example Issuing CA, O=Example" --out ca.csr --pin env:PIN',
  ],
};

export const certSelfSignSpec: CommandSpec = {
  name: 'cert self-sign',
  summary: 'Create a self-signed certificate (a root CA by default) for a device key, signed on the device.',
  description:
    'The certificate is written as PEM to --out (atomically) or to stdout. With --store it is also\n' +
    'stored beside the key (as `cert import` does). --end-entity makes a non-CA certificate.',
  options: {
    'key-ref': KEY_REF,
    subject: SUBJECT,
    days: { type: 'string', arg: 'D', help: 'validity in days (1-36500)' },
    out: PEM_OUT,
    serial: { type: 'string', arg: 'HEX', help: 'serial number (default: 16 random bytes)' },
    'end-entity': { type: 'boolean', help: 'no CA basic constraints; key usage for signatures' },
    store: { type: 'boolean', help: 'also store the certificate on the device for the key' },
    hash: HASH,
    pss: PSS,
    force: FORCE,
    pin: PIN,
  },
  examples: [
    'sc-hsm-ts cert self-sign --key-ref 1 --subject "CN=Example Root CA" --days 3650 --out root.pem --store',
  ],
};

export const certImportSpec: CommandSpec = {
  name: 'cert import',
  args: 'FILE',
  positionals: [1, 1],
  argPath: 'input',
  summary:
    'Store a certificate (PEM or DER) for a device key, as OpenSC does, so PKCS#11 applications find it.',
  description:
    "The certificate must carry the key's public key. It goes to CExx and the key description\n" +
    '(C4xx) is rewritten with the subject name and access flags (spec §6.2). An earlier\n' +
    'certificate of the key is replaced.',
  options: { 'key-ref': KEY_REF, pin: PIN },
  examples: ['sc-hsm-ts cert import ca.pem --key-ref 1 --pin env:PIN'],
};

export const certExportSpec: CommandSpec = {
  name: 'cert export',
  summary: 'Print (or write with --out) the certificate stored for a device key, as PEM. Needs no PIN.',
  options: {
    'key-ref': KEY_REF,
    out: PEM_OUT,
    force: FORCE,
  },
  examples: ['sc-hsm-ts cert export --key-ref 1 > ca.pem'],
};

export const simServeSpec: CommandSpec = {
  name: 'sim serve',
  summary:
    'Put the virtual SmartCard-HSM into pcscd (vsmartcard vpcd driver); state saved before each answer that changed it.',
  description: [
    'Runs until SIGINT/SIGTERM. pcscd then shows a reader "Virtual PCD 00 00" with the virtual card,',
    'usable by OpenSC (pkcs11-tool, sc-hsm-tool) and by this tool without --sim. The state file is',
    'held while it runs: other commands on it with --sim wait, then are told it is in use.',
    '--trace FILE writes the card-side transcript (secrets masked) when it stops.',
  ].join('\n'),
  options: {
    state: {
      type: 'string',
      arg: 'FILE',
      path: 'input',
      help: 'state file of the virtual card (created if missing)',
    },
    vpcd: {
      type: 'string',
      arg: 'HOST:PORT',
      help: 'where pcscd\u2019s vpcd listens (default 127.0.0.1:35963)',
    },
  },
  examples: ['sc-hsm-ts sim serve --state ca-test.json'],
  globals: ['profile', 'json', 'trace', 'trace-overwrite'],
  globalsInstead: {
    sim: 'the virtual card is the one of --state FILE',
    reader: 'the card goes into the reader of vpcd\u2019s slot at --vpcd HOST:PORT',
  },
};

export const simRunSpec: CommandSpec = {
  name: 'sim run',
  args: '-- COMMAND…',
  positionals: [1, 4096],
  argsArePassedOn: true,
  summary:
    'Run COMMAND with virtual SmartCard-HSMs in pcscd (a private pcscd as root), then tear everything down; exits with COMMAND\u2019s code.',
  description: [
    'As root: a private pcscd in its own mount, network and PID namespaces with the quickack route (~0.2 ms',
    'per APDU; COMMAND runs inside, without network). Otherwise the system\u2019s pcscd (~44 ms per APDU,',
    'shared). COMMAND gets PCSCLITE_CSOCK_NAME, SC_HSM_READER (the first card\u2019s reader), SC_HSM_READER_0/1,',
    'SC_HSM_READERS (one a line) and SC_HSM_PKCS11_MODULE (OpenSC\u2019s module, when installed). SIGTERM/SIGHUP',
    'are passed on to COMMAND; whatever it does, the cards are closed (saved) and pcscd stopped. Exit status:',
    'COMMAND\u2019s, 128+n when a signal n ended it. Without root, vpcd or pcscd it says so before starting.',
  ].join('\n'),
  options: {
    state: {
      type: 'string',
      arg: 'FILE',
      path: 'input',
      multiple: true,
      help: 'an existing virtual card state file, one per card in slot order (held and saved while it runs)',
    },
    cards: {
      type: 'string',
      arg: 'N',
      help: 'number of cards, 0 to 2 (vpcd\u2019s slots; 0: pcscd only, a test plugs its own in); beyond the --state files, fresh ones',
    },
    init: {
      type: 'boolean',
      help: 'initialize the fresh cards (--so-pin, --pin, --label, --dkek-share) before COMMAND starts',
    },
    'so-pin': {
      type: 'string',
      arg: 'SECRET',
      help: `with --init: SO-PIN, 16 hex characters (${SECRET_HELP})`,
    },
    pin: {
      type: 'string',
      arg: 'SECRET',
      help: `with --init: user PIN, 6-15 ASCII characters (${SECRET_HELP})`,
    },
    label: { type: 'string', arg: 'LABEL', help: 'with --init: token label' },
    'dkek-share': {
      type: 'string',
      arg: 'FILE',
      path: 'input',
      help: 'with --init: a DKEK share file (dkek create) imported into every fresh card (else a random DKEK)',
    },
    password: { type: 'string', arg: 'SECRET', help: `with --dkek-share: its password (${SECRET_HELP})` },
  },
  examples: [
    'sc-hsm-ts sim run --init --so-pin env:SO_PIN --pin env:PIN --label CI -- npm test',
    'sc-hsm-ts sim run --state ca.json -- pkcs11-tool --module "$SC_HSM_PKCS11_MODULE" -L',
  ],
  globals: ['profile', 'json', 'progress'],
  globalsInstead: {
    sim: 'the cards are given with --state FILE (repeatable) or --cards N',
    reader:
      'the cards are given with --state FILE (repeatable) or --cards N; COMMAND gets their readers in SC_HSM_READER_0/1',
    trace: 'sim serve --trace writes a card-side transcript',
  },
};

export const doctorSpec: CommandSpec = {
  name: 'doctor',
  summary:
    'Check the host: pcscd and its socket, readers, the Nitrokey on USB, udev rule, OpenSC PKCS#11 module, vpcd latency.',
  description: 'Each check prints its result and, when not ok, the fix. Exit code 1 when a check failed.',
  globals: ['json'],
};

export const demoSpec: CommandSpec = {
  name: 'demo',
  summary:
    'The whole operator guide, step by step, on fresh virtual SmartCard-HSMs (nothing real is touched).',
  description: [
    'Creates a DKEK share, initializes a virtual HSM, imports the share, generates RSA-2048 and EC P-256',
    'keys, lists them (key references vs IDs), signs and verifies, backs the keys up, restores them',
    'onto a second virtual HSM with the same share, signs there with the same public key, locks the',
    'user PIN with wrong tries and unblocks it with the SO-PIN. Test PINs: 648219 / 3537363231383830.',
  ].join('\n'),
  globals: ['json'],
};

export const apduSpec: CommandSpec = {
  name: 'apdu',
  args: 'HEX…',
  positionals: [1, 64],
  summary: 'Send raw command APDUs after selecting the applet; print each status word and data.',
  description: [
    '61xx answers are followed with GET RESPONSE. Use --trace to keep the transcript. An APDU that can',
    'cost a PIN try (VERIFY, CHANGE REFERENCE DATA or RESET RETRY COUNTER with data, INITIALIZE) is',
    'guarded like the pin commands: the tries left are read first and one try left needs --last-try.',
  ].join('\n'),
  examples: ['sc-hsm-ts apdu 0020008100   # user PIN status, costs no try'],
};

export const dumpSpec: CommandSpec = {
  name: 'dump',
  summary:
    'Everything on the card: device, PINs, DKEK, keys (pkcs15-tool style), certificates, data objects, device certificate chain.',
  description: [
    'Public information needs no PIN; --pin adds the PIN-protected data objects. The card is enumerated',
    'once and each file read once. With --trace FILE the APDU transcript (PINs masked) makes a bug report.',
  ].join('\n'),
  options: {
    pin: {
      type: 'string',
      arg: 'SECRET',
      help: `user PIN, to include PIN-protected data objects (${SECRET_HELP})`,
    },
  },
  examples: ['sc-hsm-ts dump', 'sc-hsm-ts dump --json > dump.json', 'sc-hsm-ts dump --trace dump.apdu'],
};

const DOMAIN = {
  type: 'string',
  arg: 'N',
  help: 'key domain number (0 .. the device\u2019s key domains − 1; see `sc-hsm-ts domain status`)',
} as const;

export const domainCreateSpec: CommandSpec = {
  name: 'domain create',
  summary: 'Create a DKEK key domain expecting K shares (firmware 3.x key domains; needs the user PIN).',
  description: [
    'The device must have been initialized with key domains (init --key-domains N). The domain then',
    'waits for its K shares: `domain import FILE.pbe --domain N` for each (share files as `dkek create`',
    'makes them). Keys generated with `keygen --domain N` are wrapped under that domain\u2019s DKEK.',
    'A domain that exists, or a number beyond the device\u2019s domains, is refused before anything changes.',
  ].join('\n'),
  options: {
    domain: DOMAIN,
    shares: { type: 'string', arg: 'K', help: 'number of DKEK shares of the domain (1..255)' },
    pin: PIN,
  },
  examples: ['sc-hsm-ts domain create --domain 1 --shares 2 --pin env:PIN'],
};

export const domainImportSpec: CommandSpec = {
  name: 'domain import',
  args: 'FILE.pbe',
  positionals: [1, 1],
  argPath: 'input',
  summary: 'Import a DKEK share into a key domain (as `dkek import`, which is domain 0).',
  description: [
    'Like `dkek import`, with the same protection against a share imported twice (a record per',
    'device and domain, written before the share is sent). Domains other than 0 need the user PIN.',
  ].join('\n'),
  options: {
    domain: DOMAIN,
    ...SHARE_PASSWORD_OPTIONS,
    pin: PIN,
  },
  examples: ['sc-hsm-ts domain import share-a.pbe --domain 1 --password env:DKEK_PASSWORD --pin env:PIN'],
};

export const domainStatusSpec: CommandSpec = {
  name: 'domain status',
  summary: 'Every key domain (or one): DKEK shares, shares outstanding, key check value. Needs no PIN.',
  description: [
    'A device initialized without key domains has one, domain 0 (the DKEK of init --dkek-shares).',
    'XKEK domains (key agreement, PKI-as-a-Service) are shown as such; sc-hsm-ts does not manage them.',
  ].join('\n'),
  options: { domain: DOMAIN },
  examples: ['sc-hsm-ts domain status', 'sc-hsm-ts domain status --domain 1 --json'],
};

export const domainDeleteSpec: CommandSpec = {
  name: 'domain delete',
  summary: 'Delete an empty key domain, or only its DKEK (--dkek-only); asks for confirmation like init.',
  description: [
    'The device refuses to delete a domain that still holds keys (delete them first). --dkek-only',
    'deletes the domain\u2019s DKEK: its keys stay but cannot be wrapped until the same shares are',
    'imported again (`domain import`). Needs the user PIN; --yes skips the question.',
  ].join('\n'),
  options: {
    domain: DOMAIN,
    'dkek-only': {
      type: 'boolean',
      help: 'delete only the DKEK of the domain (its shares become outstanding again)',
    },
    pin: PIN,
  },
  examples: [
    'sc-hsm-ts domain delete --domain 1 --pin env:PIN --yes',
    'sc-hsm-ts domain delete --domain 1 --dkek-only --pin env:PIN',
  ],
};
