// Proves gateway/s3/chunked.ts decodes aws-chunked bodies (signed, signed+trailer, unsigned+trailer, the AWS example) identically however the bytes are split, and fails on tampering, truncation, bad framing and wrong lengths.
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { expect } from 'chai';
import {
  AwsChunkedDecoder,
  type ChunkedOptions,
  chunkedDecoderFor,
  storedContentEncoding,
} from '../../gateway/s3/chunked.js';
import { S3Error } from '../../gateway/s3/errors.js';
import {
  chunkStringToSign,
  deriveSigningKey,
  hmacHex,
  type SigningContext,
  sha256Hex,
  trailerStringToSign,
} from '../../gateway/s3/sigv4.js';

const SK = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
const signing: SigningContext = {
  signingKey: deriveSigningKey(SK, '20130524', 'us-east-1'),
  scope: '20130524/us-east-1/s3/aws4_request',
  datetime: '20130524T000000Z',
  seedSignature: '4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9',
};

async function decode(body: Buffer, opts: ChunkedOptions, pieceBytes?: number) {
  const decoder = new AwsChunkedDecoder(opts);
  const out: Buffer[] = [];
  const pieces: Buffer[] = [];
  if (pieceBytes === undefined) pieces.push(body);
  else for (let i = 0; i < body.length; i += pieceBytes) pieces.push(body.subarray(i, i + pieceBytes));
  await pipeline(
    Readable.from(pieces),
    decoder,
    new Writable({
      write(chunk, _enc, cb) {
        out.push(chunk);
        cb();
      },
    }),
  );
  return { data: Buffer.concat(out), trailers: decoder.trailers };
}

async function fails(p: Promise<unknown>, code: string): Promise<S3Error> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(S3Error);
    expect((err as S3Error).code, (err as S3Error).message).to.equal(code);
    return err as S3Error;
  }
  expect.fail(`expected ${code}`);
}

/** Builds a signed aws-chunked body the way the SDKs do. */
function signedBody(chunks: Buffer[], ctx: SigningContext, trailers?: [string, string][]): Buffer {
  let prev = ctx.seedSignature;
  const parts: Buffer[] = [];
  for (const c of [...chunks, Buffer.alloc(0)]) {
    const sig = hmacHex(ctx.signingKey, chunkStringToSign(ctx, prev, sha256Hex(c)));
    prev = sig;
    parts.push(Buffer.from(`${c.length.toString(16)};chunk-signature=${sig}\r\n`), c);
    if (c.length > 0) parts.push(Buffer.from('\r\n'));
  }
  if (trailers) {
    let canonical = '';
    for (const [k, v] of trailers) {
      parts.push(Buffer.from(`${k}:${v}\r\n`));
      canonical += `${k}:${v}\n`;
    }
    const sig = hmacHex(ctx.signingKey, trailerStringToSign(ctx, prev, sha256Hex(canonical)));
    parts.push(Buffer.from(`x-amz-trailer-signature:${sig}\r\n`));
  }
  parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

function unsignedBody(chunks: Buffer[], trailers: [string, string][]): Buffer {
  const parts: Buffer[] = [];
  for (const c of chunks) parts.push(Buffer.from(`${c.length.toString(16)}\r\n`), c, Buffer.from('\r\n'));
  parts.push(Buffer.from('0\r\n'));
  for (const [k, v] of trailers) parts.push(Buffer.from(`${k}:${v}\r\n`));
  parts.push(Buffer.from('\r\n'));
  return Buffer.concat(parts);
}

describe('chunked: the AWS STREAMING-AWS4-HMAC-SHA256-PAYLOAD example', () => {
  // https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
  const expectedSigs = [
    'ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648',
    '0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497',
    'b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9',
  ];
  const payload = Buffer.alloc(66560, 'a');
  const body = Buffer.concat([
    Buffer.from(`10000;chunk-signature=${expectedSigs[0]}\r\n`),
    payload.subarray(0, 65536),
    Buffer.from(`\r\n400;chunk-signature=${expectedSigs[1]}\r\n`),
    payload.subarray(65536),
    Buffer.from(`\r\n0;chunk-signature=${expectedSigs[2]}\r\n\r\n`),
  ]);

  it('has the documented framing size and decodes with every chunk signature verified', async () => {
    expect(body.length).to.equal(66824);
    expect(signedBody([payload.subarray(0, 65536), payload.subarray(65536)], signing)).to.deep.equal(body);
    const { data } = await decode(body, { mode: 'streaming-signed', signing, decodedLength: 66560 });
    expect(data.equals(payload)).to.equal(true);
  });

  it('fails with SignatureDoesNotMatch when one data byte is changed', async () => {
    const bad = Buffer.from(body);
    bad[1000] = 'b'.charCodeAt(0);
    await fails(decode(bad, { mode: 'streaming-signed', signing }), 'SignatureDoesNotMatch');
  });

  it('fails when the chain is reordered or the final signature is wrong', async () => {
    const bad = Buffer.from(body.toString('latin1').replace(expectedSigs[2], expectedSigs[1]), 'latin1');
    await fails(decode(bad, { mode: 'streaming-signed', signing }), 'SignatureDoesNotMatch');
  });
});

describe('chunked: modes, trailers and streaming', () => {
  const chunks = [Buffer.from('hello '), Buffer.alloc(9000, 'x'), Buffer.from('é end')];
  const payload = Buffer.concat(chunks);

  it('decodes STREAMING-UNSIGNED-PAYLOAD-TRAILER and exposes the trailers', async () => {
    const body = unsignedBody(chunks, [['x-amz-checksum-crc32', 'AAAAAA==']]);
    const { data, trailers } = await decode(body, {
      mode: 'streaming-unsigned-trailer',
      decodedLength: payload.length,
      declaredTrailers: ['x-amz-checksum-crc32'],
    });
    expect(data.equals(payload)).to.equal(true);
    expect(trailers.get('x-amz-checksum-crc32')).to.equal('AAAAAA==');
  });

  it('decodes STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER and verifies the trailer signature', async () => {
    const body = signedBody(chunks, signing, [['x-amz-checksum-crc32c', 'sOO8/Q==']]);
    const opts: ChunkedOptions = {
      mode: 'streaming-signed-trailer',
      signing,
      decodedLength: payload.length,
      declaredTrailers: ['x-amz-checksum-crc32c'],
    };
    const { data, trailers } = await decode(body, opts);
    expect(data.equals(payload)).to.equal(true);
    expect(trailers.get('x-amz-checksum-crc32c')).to.equal('sOO8/Q==');
    const tampered = Buffer.from(body.toString('latin1').replace('sOO8/Q==', 'sOO8/R=='), 'latin1');
    await fails(decode(tampered, opts), 'SignatureDoesNotMatch');
  });

  it('gives the same output and trailers when fed one byte at a time or in odd pieces', async () => {
    const body = signedBody(chunks, signing, [['x-amz-checksum-crc32', 'AAAAAA==']]);
    const opts: ChunkedOptions = {
      mode: 'streaming-signed-trailer',
      signing,
      decodedLength: payload.length,
      declaredTrailers: ['x-amz-checksum-crc32'],
    };
    for (const size of [1, 2, 3, 7, 64, 1000]) {
      const { data, trailers } = await decode(body, opts, size);
      expect(data.equals(payload), `piece size ${size}`).to.equal(true);
      expect(trailers.get('x-amz-checksum-crc32')).to.equal('AAAAAA==');
    }
  });

  it('passes data on before the body ends (no buffering of a whole chunk)', async () => {
    const decoder = new AwsChunkedDecoder({ mode: 'streaming-unsigned-trailer', declaredTrailers: [] });
    const seen: Buffer[] = [];
    decoder.on('data', (c: Buffer) => seen.push(c));
    decoder.write(Buffer.from('10000\r\n'));
    decoder.write(Buffer.alloc(100, 'z'));
    await new Promise((r) => setImmediate(r));
    expect(Buffer.concat(seen).length).to.equal(100);
    decoder.destroy();
  });

  it('accepts a trailer section whose final CRLF is missing', async () => {
    const body = unsignedBody(chunks, [['x-amz-checksum-crc32', 'AAAAAA==']]);
    const { data } = await decode(body.subarray(0, body.length - 2), {
      mode: 'streaming-unsigned-trailer',
      declaredTrailers: ['x-amz-checksum-crc32'],
    });
    expect(data.equals(payload)).to.equal(true);
  });
});

describe('chunked: failures', () => {
  const chunks = [Buffer.from('abcdef'), Buffer.from('ghij')];
  const unsigned: ChunkedOptions = {
    mode: 'streaming-unsigned-trailer',
    declaredTrailers: ['x-amz-checksum-crc32'],
  };
  const body = unsignedBody(chunks, [['x-amz-checksum-crc32', 'AAAAAA==']]);

  it('fails with IncompleteBody for every truncation that drops framing', async () => {
    // Cutting anywhere before the last trailer line's CRLF loses data, framing or a declared trailer.
    const lastLine = body.length - 2 - 'x-amz-checksum-crc32:AAAAAA==\r\n'.length;
    for (let cut = 0; cut < lastLine; cut++) {
      const err = await decode(body.subarray(0, cut), unsigned).then(
        () => undefined,
        (e: unknown) => e as S3Error,
      );
      expect(err, `cut at ${cut}`).to.be.instanceOf(S3Error);
      expect(['IncompleteBody', 'MalformedTrailerError']).to.include((err as S3Error).code);
    }
    await fails(decode(body.subarray(0, 10), unsigned), 'IncompleteBody');
  });

  it('fails on a bad hex size, a missing CRLF, or data after the end', async () => {
    await fails(
      decode(Buffer.from('zz\r\nab\r\n0\r\n\r\n'), { ...unsigned, declaredTrailers: [] }),
      'InvalidRequest',
    );
    await fails(
      decode(Buffer.from('2\nab\r\n0\r\n\r\n'), { ...unsigned, declaredTrailers: [] }),
      'InvalidRequest',
    );
    await fails(
      decode(Buffer.from('2\r\nabX\n0\r\n\r\n'), { ...unsigned, declaredTrailers: [] }),
      'InvalidRequest',
    );
    await fails(
      decode(Buffer.from('2\r\nab\r\n0\r\n\r\nextra'), { ...unsigned, declaredTrailers: [] }),
      'InvalidRequest',
    );
    await fails(
      decode(Buffer.from(`${'1'.repeat(17)}\r\n`), { ...unsigned, declaredTrailers: [] }),
      'InvalidRequest',
    );
  });

  it('bounds the chunk header line', async () => {
    await fails(
      decode(Buffer.from(`1;${'x'.repeat(5000)}`), { ...unsigned, declaredTrailers: [] }),
      'InvalidRequest',
    );
  });

  it('fails when the decoded length differs from x-amz-decoded-content-length', async () => {
    await fails(decode(body, { ...unsigned, decodedLength: 11 }), 'IncompleteBody');
    await fails(decode(body, { ...unsigned, decodedLength: 9 }), 'IncompleteBody');
    await decode(body, { ...unsigned, decodedLength: 10 });
  });

  it('fails on undeclared, missing or repeated trailers', async () => {
    await fails(decode(body, { ...unsigned, declaredTrailers: [] }), 'MalformedTrailerError');
    await fails(decode(unsignedBody(chunks, []), unsigned), 'MalformedTrailerError');
    await fails(
      decode(
        unsignedBody(chunks, [
          ['x-amz-checksum-crc32', 'AAAAAA=='],
          ['x-amz-checksum-crc32', 'AAAAAA=='],
        ]),
        unsigned,
      ),
      'MalformedTrailerError',
    );
  });

  it('requires chunk signatures in signed mode and the trailer signature in signed-trailer mode', async () => {
    await fails(decode(unsignedBody(chunks, []), { mode: 'streaming-signed', signing }), 'InvalidRequest');
    const noTrailerSig = signedBody(chunks, signing)
      .toString('latin1')
      .replace(/\r\n$/, 'x-amz-checksum-crc32:AAAAAA==\r\n\r\n');
    await fails(
      decode(Buffer.from(noTrailerSig, 'latin1'), {
        mode: 'streaming-signed-trailer',
        signing,
        declaredTrailers: ['x-amz-checksum-crc32'],
      }),
      'MalformedTrailerError',
    );
  });
});

describe('chunked: helpers', () => {
  it('builds a decoder from headers only for streaming modes', () => {
    expect(chunkedDecoderFor({ mode: 'unsigned' }, signing, {})).to.equal(undefined);
    const d = chunkedDecoderFor({ mode: 'streaming-unsigned-trailer' }, signing, {
      'x-amz-decoded-content-length': '5',
      'x-amz-trailer': 'X-Amz-Checksum-CRC32',
    });
    expect(d).to.be.instanceOf(AwsChunkedDecoder);
    expect(() =>
      chunkedDecoderFor({ mode: 'streaming-signed' }, signing, { 'x-amz-decoded-content-length': '-1' }),
    ).to.throw(S3Error);
  });

  it('drops aws-chunked from the stored Content-Encoding', () => {
    expect(storedContentEncoding('aws-chunked')).to.equal(undefined);
    expect(storedContentEncoding('aws-chunked, gzip')).to.equal('gzip');
    expect(storedContentEncoding('gzip')).to.equal('gzip');
    expect(storedContentEncoding(undefined)).to.equal(undefined);
  });
});
