// An S3 endpoint that stores nothing and answers at once, run in its own process: the bench's
// workloads against it measure what the client side (the SDK at default settings plus the bench's
// own byte checks) can do on this machine with a core to itself, the ceiling of every result.
// GETs serve the bytes the workloads expect (the same seeds), generated on the fly.
//   node dist/bench/null-s3.js SIZES_JSON    prints its port, exits when stdin closes
import http from 'node:http';
import { crc32 } from 'node:zlib';
import { bytes, stream } from './data.js';
import { listKey, objectOf, type Sizes } from './workloads.js';

const sizes = JSON.parse(process.argv[2] ?? '{}') as Sizes;
const etag = '"d41d8cd98f00b204e9800998ecf8427e"';
const lastModified = new Date().toUTCString();

/** Full-object CRC32s as the real server returns them for PutObject'd objects, computed once. */
const crcByKey = new Map<string, string>();

function crc32Of(seed: number, size: number): string {
  let crc = 0;
  const piece = 1024 * 1024;
  for (let at = 0; at < size; at += piece) crc = crc32(bytes(seed, at, Math.min(piece, size - at)), crc);
  const out = Buffer.alloc(4);
  out.writeUInt32BE(crc >>> 0);
  return out.toString('base64');
}

function xml(res: http.ServerResponse, body: string): void {
  res.writeHead(200, { 'Content-Type': 'application/xml', 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

/** A page as the real server writes it for the bench's keys (stored by PutObject with the SDK's CRC32). */
function listPage(res: http.ServerResponse, q: URLSearchParams): void {
  const max = Math.min(Number(q.get('max-keys') ?? 1000), 1000);
  const from = Number(q.get('continuation-token') ?? 0);
  const to = Math.min(sizes.listKeys, from + max);
  let body = `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>${q.get('prefix') ?? ''}</Prefix><KeyCount>${to - from}</KeyCount><MaxKeys>${max}</MaxKeys><IsTruncated>${to < sizes.listKeys}</IsTruncated>`;
  if (to < sizes.listKeys) body += `<NextContinuationToken>${to}</NextContinuationToken>`;
  for (let i = from; i < to; i++) {
    body += `<Contents><Key>${listKey(i)}</Key><LastModified>2026-01-01T00:00:00.000Z</LastModified><ETag>&quot;d41d8cd98f00b204e9800998ecf8427e&quot;</ETag><Size>0</Size><StorageClass>STANDARD</StorageClass><ChecksumAlgorithm>CRC32</ChecksumAlgorithm><ChecksumType>FULL_OBJECT</ChecksumType></Contents>`;
  }
  xml(res, `${body}</ListBucketResult>`);
}

function getObject(req: http.IncomingMessage, res: http.ServerResponse, key: string): void {
  const obj = objectOf(key, sizes);
  if (!obj) {
    res.writeHead(404, { 'Content-Type': 'application/xml' });
    res.end('<Error><Code>NoSuchKey</Code></Error>');
    return;
  }
  const headers: http.OutgoingHttpHeaders = {
    ETag: etag,
    'Last-Modified': lastModified,
    'Accept-Ranges': 'bytes',
  };
  const range = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  let start = 0;
  let end = obj.size - 1;
  if (range) {
    start = Number(range[1]);
    end = Math.min(Number(range[2]), obj.size - 1);
    headers['Content-Range'] = `bytes ${start}-${end}/${obj.size}`;
  } else if (obj.wholeChecksum && req.headers['x-amz-checksum-mode'] === 'ENABLED') {
    let crc = crcByKey.get(key);
    if (!crc) {
      crc = crc32Of(obj.seed, obj.size);
      crcByKey.set(key, crc);
    }
    headers['x-amz-checksum-crc32'] = crc;
    headers['x-amz-checksum-type'] = 'FULL_OBJECT';
  }
  headers['Content-Length'] = end - start + 1;
  res.writeHead(range ? 206 : 200, headers);
  if (req.method === 'HEAD') res.end();
  else stream(obj.seed, end - start + 1, start).pipe(res);
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  const [, , ...rest] = url.pathname.split('/');
  const key = decodeURIComponent(rest.join('/'));
  const q = url.searchParams;
  req.resume();
  req.on('end', () => {
    if (req.method === 'PUT') {
      res.writeHead(200, { ETag: etag });
      res.end();
    } else if (req.method === 'POST' && q.has('uploads')) {
      xml(
        res,
        `<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>${key}</Key><UploadId>u</UploadId></InitiateMultipartUploadResult>`,
      );
    } else if (req.method === 'POST' && q.has('uploadId')) {
      xml(
        res,
        `<CompleteMultipartUploadResult><Bucket>b</Bucket><Key>${key}</Key><ETag>${etag}</ETag></CompleteMultipartUploadResult>`,
      );
    } else if (req.method === 'DELETE') {
      res.writeHead(204);
      res.end();
    } else if (req.method === 'GET' && q.get('list-type') === '2') {
      listPage(res, q);
    } else getObject(req, res, key);
  });
});

server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  console.log(typeof addr === 'object' && addr ? addr.port : 0);
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
