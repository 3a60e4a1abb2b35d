/**
 * Errors of the WebCrypto provider under the names the Web Cryptography API gives them (W3C
 * WebCrypto §"Exceptions": InvalidAccessError for a key that does not fit the call,
 * NotSupportedError for a parameter the device cannot do, OperationError for an operation that
 * failed, DataError for input that is not what it claims, NotFoundError for a storage item the
 * device does not hold), so that code written for a browser's or node-webcrypto-p11's `subtle` that checks
 * `e.name` ports unchanged. They stay ScHsmErrors: `code`, `fix` and `isScHsmError` as everywhere.
 */
import { ScHsmError, type ScHsmErrorCode, type ScHsmErrorOptions } from '../errors.js';

/** The DOMException names the provider uses. */
export type WebCryptoErrorName =
  | 'InvalidAccessError'
  | 'NotSupportedError'
  | 'OperationError'
  | 'DataError'
  | 'NotFoundError';

/** An ScHsmError whose `name` is the WebCrypto (DOMException) name `name`. */
export function webCryptoError(
  name: WebCryptoErrorName,
  code: ScHsmErrorCode,
  message: string,
  o: ScHsmErrorOptions = {},
): ScHsmError {
  const e = new ScHsmError(code, message, o);
  e.name = name;
  return e;
}

/**
 * The card's refusal of a key for an operation under its WebCrypto name: ALGORITHM_NOT_ALLOWED
 * (the key's algorithm list, spec §3.11) and USE_COUNTER_EXHAUSTED (its use counter) are
 * InvalidAccessError, "the operation is not valid for the provided key" (W3C WebCrypto). Every
 * device-key operation of the provider (sign, decrypt, deriveBits, AES encrypt/decrypt, CMAC)
 * goes through it; other errors pass unchanged.
 */
export async function keyRefusal<T>(op: Promise<T>): Promise<T> {
  try {
    return await op;
  } catch (e) {
    if (e instanceof ScHsmError && (e.code === 'ALGORITHM_NOT_ALLOWED' || e.code === 'USE_COUNTER_EXHAUSTED'))
      e.name = 'InvalidAccessError';
    throw e;
  }
}
