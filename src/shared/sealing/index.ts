/** Encryption at rest shared by the authorization server, its CLI and the resource server. */
export { type DataKeyStore, type KeyEncryptionKeys, loadDataKeys } from './data-keys.ts';
export { type DataKeys, generateDataKeys, keyId, SealedBox } from './sealed-box.ts';
