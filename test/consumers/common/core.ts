// The core and the virtual card, as a program that drives a device uses them (README, Library);
// the same source is checked as ESM (import) and as CommonJS (require) by the consumer projects.
import {
  backupDevice,
  decodeKeyDescription,
  decryptDkekShare,
  encryptDkekShare,
  isScHsmError,
  type KeyInfo,
  listReaders,
  openPcsc,
  restoreDevice,
  ScHsmError,
  type ScHsmErrorCode,
  SmartCardHsm,
  type Transport,
} from 'sc-hsm-ts';
import { VirtualSmartCardHsm } from 'sc-hsm-ts/sim';
import {
  FaultInjectingTransport,
  initializedTestDevice,
  type PcscTestCard,
  RecordingTransport,
  ReplayTransport,
  secretMask,
  startPcscCard,
  TEST_PIN,
  type TestDevice,
} from 'sc-hsm-ts/testing';

/** A transport of the program's own, written against the package's interface. */
class LoggingTransport implements Transport {
  readonly extendedLength: boolean | undefined;
  constructor(private readonly inner: Transport) {
    this.extendedLength = inner.extendedLength;
  }
  transmit(apdu: Uint8Array): Promise<Uint8Array> {
    return this.inner.transmit(apdu);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export async function main(share: Uint8Array, data: Uint8Array): Promise<string[]> {
  const card = new VirtualSmartCardHsm();
  const lines: string[] = [];
  const hsm = await SmartCardHsm.open(
    new LoggingTransport(new RecordingTransport(card, (l) => lines.push(l), secretMask)),
  );
  await hsm.initialize({ soPin: '3537363231383830', userPin: '648219', label: 'CA', dkekShares: 1 });
  const { kcv } = await hsm.importDkekShare(share);
  await hsm.verifyPin('648219');
  const k = await hsm.generateKeyPair({ type: 'ec', curve: 'prime256v1', label: 'ca-ec' });
  const sig: Uint8Array = await hsm.sign(k.keyRef, 'ECDSA-SHA256', data);
  const keys: KeyInfo[] = await hsm.listKeys();
  const { manifest } = await backupDevice(hsm, '/tmp/backup', {
    authenticate: () => hsm.verifyPin('648219'),
  });
  await restoreDevice(hsm, '/tmp/backup', { authenticate: () => hsm.verifyPin('648219') });
  const file = await encryptDkekShare(share, 'password');
  const again: Uint8Array = await decryptDkekShare(file, 'password');
  const faulty = new FaultInjectingTransport(new ReplayTransport(lines.join('\n')), {
    at: 2,
    kind: 'card-removed',
    delivered: false,
  });
  try {
    await SmartCardHsm.open(faulty);
  } catch (e) {
    if (isScHsmError(e)) {
      const code: ScHsmErrorCode = e.code;
      lines.push(code);
    }
    if (e instanceof ScHsmError) lines.push(e.message);
  }
  const dev: TestDevice = await initializedTestDevice({ rsa: true, dkekShare: share });
  const ecSig: Uint8Array = await dev.hsm.sign(dev.keys.ec.keyRef, 'ECDSA-SHA256', data);
  lines.push(String(ecSig.length), dev.keys.rsa?.id.length.toString() ?? '', TEST_PIN);
  await dev.close();
  if (process.env.SC_HSM_TS_CONSUMER_PCSC) {
    const pcsc: PcscTestCard = await startPcscCard({ slot: 1, initialized: false });
    const module: string | undefined = pcsc.pkcs11Module;
    lines.push(pcsc.reader, module ?? '');
    await pcsc.close();
  }
  const readers = await listReaders();
  if (readers.length > 0) await (await openPcsc()).close();
  return [
    toHexString(kcv),
    String(sig.length + again.length),
    String(keys.length),
    manifest.created,
    ...lines,
  ].concat(keys.map((key) => key.description?.label ?? decodeKeyDescription(new Uint8Array(0)).label ?? ''));
}

function toHexString(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}
