// aws-chunked body decoding as a streaming Transform: chunk framing is removed (never stored),
// chunk and trailer signatures are verified, trailers (x-amz-checksum-*) are collected.
// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html
// https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming-trailers.html
//
// Data is passed on as it arrives, before its chunk's signature is checked; a bad signature,
// framing or length makes the stream fail before it ends, so a consumer that commits only after
// a clean end (stream/promises pipeline) never stores a forged or truncated body.
import { createHash, type Hash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { Transform, type TransformCallback } from 'node:stream';
import { S3Error } from './errors.js';
import {
  chunkStringToSign,
  emptySha256,
  hmacHex,
  type PayloadMode,
  type SigningContext,
  sha256Hex,
  signaturesEqual,
  trailerStringToSign,
} from './sigv4.js';

/** Longest chunk-header line: 16 hex digits + ";chunk-signature=" + 64 hex ≈ 100 bytes; slack for extensions. */
export const chunkHeaderBytesMax = 1024;
/** All trailer lines together: one checksum plus a signature is ~150 bytes. */
export const trailerBytesMax = 16 * 1024;
/** Hex digits in a chunk size: 16 covers any size; more is junk. */
const chunkSizeHexDigitsMax = 16;

export type StreamingMode = Extract<
  PayloadMode,
  'streaming-signed' | 'streaming-signed-trailer' | 'streaming-unsigned-trailer'
>;

export interface ChunkedOptions {
  mode: StreamingMode;
  /** Required for the signed modes (from AuthResult.signing). */
  signing?: SigningContext;
  /** x-amz-decoded-content-length, when the client sent it: the decoded body must have exactly this many bytes. */
  decodedLength?: number;
  /** Lowercase names declared in x-amz-trailer; trailers must match them exactly. */
  declaredTrailers?: string[];
}

type State = 'header' | 'data' | 'dataCrlf' | 'trailer' | 'done';

export function isStreamingMode(mode: PayloadMode): mode is StreamingMode {
  return mode.startsWith('streaming-');
}

export class AwsChunkedDecoder extends Transform {
  /** Trailer name (lowercase) → value; complete once the stream has ended without error. */
  readonly trailers = new Map<string, string>();
  /** Decoded (payload) bytes passed on so far. */
  decodedBytes = 0;

  private state: State = 'header';
  private line: Buffer[] = [];
  private lineBytes = 0;
  private remaining = 0;
  private crlfSeen = 0;
  private chunkHash?: Hash;
  private chunkSignature = '';
  private previousSignature = '';
  private trailerBytes = 0;
  private trailerSignature?: string;
  private readonly signed: boolean;

  constructor(private readonly opts: ChunkedOptions) {
    super();
    this.signed = opts.mode !== 'streaming-unsigned-trailer';
    if (this.signed) {
      if (!opts.signing) throw new Error('AwsChunkedDecoder: signed mode needs a signing context');
      this.previousSignature = opts.signing.seedSignature;
    }
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.consume(chunk);
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  override _flush(cb: TransformCallback): void {
    try {
      // Some clients end the body right after the last trailer line, without the closing CRLF.
      if (this.state === 'trailer' && this.lineBytes === 0 && this.trailerBytes > 0) this.finishTrailers();
      if (this.state !== 'done')
        throw new S3Error(
          'IncompleteBody',
          'The aws-chunked body ended before its final chunk and trailers.',
        );
      if (this.opts.decodedLength !== undefined && this.decodedBytes !== this.opts.decodedLength)
        throw new S3Error(
          'IncompleteBody',
          `The body decoded to ${this.decodedBytes} bytes but x-amz-decoded-content-length is ${this.opts.decodedLength}.`,
        );
      cb();
    } catch (err) {
      cb(err as Error);
    }
  }

  private consume(chunk: Buffer): void {
    let off = 0;
    while (off < chunk.length) {
      switch (this.state) {
        case 'header':
        case 'trailer': {
          const lf = chunk.indexOf(0x0a, off);
          const end = lf < 0 ? chunk.length : lf + 1;
          this.line.push(chunk.subarray(off, end));
          this.lineBytes += end - off;
          off = end;
          const max = this.state === 'header' ? chunkHeaderBytesMax : trailerBytesMax - this.trailerBytes;
          if (this.lineBytes > max)
            throw framing(this.state === 'header' ? 'chunk header line too long' : 'trailers too large');
          if (lf >= 0) {
            const line = Buffer.concat(this.line, this.lineBytes);
            this.line = [];
            this.lineBytes = 0;
            if (line.length < 2 || line[line.length - 2] !== 0x0d)
              throw framing('line not terminated by CRLF');
            const text = line.subarray(0, line.length - 2).toString('latin1');
            if (this.state === 'header') this.onChunkHeader(text);
            else this.onTrailerLine(text, line.length);
          }
          break;
        }
        case 'data': {
          const n = Math.min(this.remaining, chunk.length - off);
          const piece = chunk.subarray(off, off + n);
          off += n;
          this.remaining -= n;
          this.decodedBytes += n;
          if (this.opts.decodedLength !== undefined && this.decodedBytes > this.opts.decodedLength)
            throw new S3Error(
              'IncompleteBody',
              `The body decodes to more than x-amz-decoded-content-length (${this.opts.decodedLength}) bytes.`,
            );
          this.chunkHash?.update(piece);
          this.push(piece);
          if (this.remaining === 0) {
            this.state = 'dataCrlf';
            this.crlfSeen = 0;
          }
          break;
        }
        case 'dataCrlf': {
          const expected = this.crlfSeen === 0 ? 0x0d : 0x0a;
          if (chunk[off] !== expected) throw framing('chunk data not followed by CRLF');
          off++;
          if (++this.crlfSeen === 2) {
            if (this.signed) this.verifyChunk((this.chunkHash as Hash).digest('hex'));
            this.state = 'header';
          }
          break;
        }
        case 'done':
          throw framing('unexpected data after the final chunk');
      }
    }
  }

  private onChunkHeader(text: string): void {
    const semi = text.indexOf(';');
    const hex = semi < 0 ? text : text.slice(0, semi);
    if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length > chunkSizeHexDigitsMax)
      throw framing(`invalid chunk size '${truncate(hex)}'`);
    const size = Number.parseInt(hex, 16);
    if (!Number.isSafeInteger(size)) throw framing(`invalid chunk size '${truncate(hex)}'`);
    if (this.signed) {
      const m = /^chunk-signature=([0-9a-fA-F]{64})$/.exec(semi < 0 ? '' : text.slice(semi + 1));
      if (!m) throw framing('chunk header lacks a valid chunk-signature');
      this.chunkSignature = m[1].toLowerCase();
    }
    if (size === 0) {
      if (this.signed) this.verifyChunk(emptySha256);
      this.state = 'trailer';
      return;
    }
    this.remaining = size;
    this.chunkHash = this.signed ? createHash('sha256') : undefined;
    this.state = 'data';
  }

  private verifyChunk(dataSha256: string): void {
    const signing = this.opts.signing as SigningContext;
    const expected = hmacHex(
      signing.signingKey,
      chunkStringToSign(signing, this.previousSignature, dataSha256),
    );
    if (!signaturesEqual(expected, this.chunkSignature))
      throw new S3Error(
        'SignatureDoesNotMatch',
        'The chunk signature of an aws-chunked body does not match.',
      );
    this.previousSignature = this.chunkSignature;
  }

  private onTrailerLine(text: string, lineBytes: number): void {
    if (text === '') {
      this.finishTrailers();
      return;
    }
    this.trailerBytes += lineBytes;
    const colon = text.indexOf(':');
    if (colon <= 0) throw new S3Error('MalformedTrailerError', `Malformed trailer line '${truncate(text)}'.`);
    const name = text.slice(0, colon).trim().toLowerCase();
    const value = text.slice(colon + 1).trim();
    if (name === 'x-amz-trailer-signature' && this.opts.mode === 'streaming-signed-trailer') {
      if (this.trailerSignature !== undefined)
        throw new S3Error('MalformedTrailerError', 'Repeated trailer signature.');
      this.trailerSignature = value;
      return;
    }
    if (this.trailerSignature !== undefined)
      throw new S3Error('MalformedTrailerError', 'Trailers follow the trailer signature.');
    if (this.opts.mode === 'streaming-signed')
      throw new S3Error('MalformedTrailerError', 'This payload mode allows no trailers.');
    if (!(this.opts.declaredTrailers ?? []).includes(name))
      throw new S3Error(
        'MalformedTrailerError',
        `Trailer '${truncate(name)}' was not declared in x-amz-trailer.`,
      );
    if (this.trailers.has(name)) throw new S3Error('MalformedTrailerError', `Repeated trailer '${name}'.`);
    this.trailers.set(name, value);
  }

  private finishTrailers(): void {
    for (const name of this.opts.declaredTrailers ?? [])
      if (!this.trailers.has(name))
        throw new S3Error(
          'MalformedTrailerError',
          `The declared trailer '${name}' is missing from the body.`,
        );
    if (this.opts.mode === 'streaming-signed-trailer') {
      if (this.trailerSignature === undefined)
        throw new S3Error(
          'MalformedTrailerError',
          'The trailer signature (x-amz-trailer-signature) is missing.',
        );
      let canonical = '';
      for (const [name, value] of this.trailers) canonical += `${name}:${value}\n`;
      const signing = this.opts.signing as SigningContext;
      const expected = hmacHex(
        signing.signingKey,
        trailerStringToSign(signing, this.previousSignature, sha256Hex(canonical)),
      );
      if (!signaturesEqual(expected, this.trailerSignature))
        throw new S3Error(
          'SignatureDoesNotMatch',
          'The trailer signature of an aws-chunked body does not match.',
        );
    }
    this.state = 'done';
  }
}

function framing(what: string): S3Error {
  return new S3Error('InvalidRequest', `Malformed aws-chunked body: ${what}.`);
}

function truncate(s: string): string {
  return s.length > 80 ? `${s.slice(0, 80)}...` : s;
}

/**
 * The decoder a request needs, or undefined when its body is not aws-chunked. Reads
 * x-amz-decoded-content-length and x-amz-trailer from the headers.
 */
export function chunkedDecoderFor(
  payload: { mode: PayloadMode },
  signing: SigningContext | undefined,
  headers: IncomingHttpHeaders,
): AwsChunkedDecoder | undefined {
  if (!isStreamingMode(payload.mode)) return undefined;
  const rawLen = headers['x-amz-decoded-content-length'];
  let decodedLength: number | undefined;
  if (rawLen !== undefined) {
    const v = String(rawLen).trim();
    if (!/^\d{1,16}$/.test(v) || !Number.isSafeInteger(Number(v)))
      throw new S3Error('InvalidArgument', 'x-amz-decoded-content-length must be a non-negative integer.', {
        extra: { ArgumentName: 'x-amz-decoded-content-length', ArgumentValue: v },
      });
    decodedLength = Number(v);
  }
  const trailerHeader = headers['x-amz-trailer'];
  const declaredTrailers = (Array.isArray(trailerHeader) ? trailerHeader.join(',') : (trailerHeader ?? ''))
    .split(',')
    .map((t) => t.trim().toLowerCase())
    .filter((t) => t !== '');
  if (payload.mode === 'streaming-signed' && declaredTrailers.length > 0)
    throw new S3Error('InvalidRequest', 'x-amz-trailer needs a *-TRAILER x-amz-content-sha256 payload mode.');
  return new AwsChunkedDecoder({ mode: payload.mode, signing, decodedLength, declaredTrailers });
}

/** Content-Encoding to store: aws-chunked describes the transfer, not the object, so drop it. */
export function storedContentEncoding(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const kept = header
    .split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '' && t.toLowerCase() !== 'aws-chunked');
  return kept.length > 0 ? kept.join(', ') : undefined;
}
