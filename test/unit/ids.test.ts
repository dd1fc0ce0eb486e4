// Generated identifiers: key pairs a command line can take as they are, request ids that never repeat.
import { expect } from 'chai';
import { chunkIdPattern, newChunkId, newKeyPair, newRequestId } from '../../lib/ids.js';

describe('ids', () => {
  it('key pairs: AWS-shaped access keys, 40 letters and digits of secret, never twice the same', () => {
    const secrets = new Set<string>();
    const firstChars = new Set<string>();
    for (let i = 0; i < 2000; i++) {
      const { accessKey, secretKey } = newKeyPair();
      expect(accessKey).to.match(/^S3DFS[0-9A-F]{16}$/);
      expect(secretKey).to.match(/^[A-Za-z0-9]{40}$/);
      secrets.add(secretKey);
      firstChars.add(secretKey[0]);
    }
    expect(secrets.size).to.equal(2000);
    // All 62 characters turn up in first place: the alphabet is used whole, not a biased part of it.
    expect(firstChars.size).to.equal(62);
  });

  it('request ids: 16 uppercase hex characters, distinct in a long run', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) seen.add(newRequestId());
    expect(seen.size).to.equal(100_000);
    for (const id of [...seen].slice(0, 10)) expect(id).to.match(/^[0-9A-F]{16}$/);
  });

  it('chunk ids match the pattern every path check relies on', () => {
    for (let i = 0; i < 100; i++) expect(newChunkId()).to.match(chunkIdPattern);
  });
});
