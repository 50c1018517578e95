/** Encryption at rest shared by the authorization server, its CLI and the resource server. */
export {
  DATA_KEY_ACTIVATION_DELAY_MS,
  type DataKeyRotation,
  type DataKeyStore,
  type KeyEncryptionKeys,
  loadDataKeys,
  rotateDataKey,
} from './data-keys.ts';
export { type DataKeys, generateDataKeys, keyId, SealedBox } from './sealed-box.ts';
