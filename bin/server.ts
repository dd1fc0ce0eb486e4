// `s3dfs server`: the manager, its storage nodes and a gateway in one process, sharing one
// metadata database (embedded PGlite unless DATABASE_URL is set). The one-command start.
import { loadGatewayConfig } from '../gateway/config.js';
import { credentialsFile } from '../gateway/credentials.js';
import { startGateway } from '../gateway/main.js';
import { ConfigError } from '../lib/config.js';
import { openDb } from '../lib/db.js';
import { createLogger } from '../lib/logger.js';
import { loadManagerConfig } from '../manager/config.js';
import { startManager } from '../manager/manager.js';

export async function runServer(args: string[]): Promise<void> {
  if (args.length > 0)
    throw new ConfigError([`s3dfs server takes no arguments (got ${args.join(' ')}); use S3DFS_* variables`]);
  const problems: string[] = [];
  const managerConfig = collect(problems, () => loadManagerConfig(process.env));
  const gatewayConfig = collect(problems, () => loadGatewayConfig(process.env));
  if (problems.length > 0 || !managerConfig || !gatewayConfig) throw new ConfigError(problems);

  const log = createLogger('s3dfs');
  const db = await openDb({ databaseUrl: gatewayConfig.databaseUrl, dataDir: gatewayConfig.dataDir });
  const manager = await startManager({
    config: managerConfig,
    db,
    logger: log.child({ service: 'manager' }),
  });
  const gateway = await startGateway({
    config: { ...gatewayConfig, managerUrl: manager.url, adminToken: manager.adminToken },
    db,
    log: log.child({ service: 'gateway' }),
    ringSource: async () => manager.ring(),
    clusterSecret: manager.clusterSecret,
  });

  const endpoint = gateway.url;
  const secret = secretLines(
    gateway.credentials,
    Boolean(gatewayConfig.accessKey && gatewayConfig.secretKey),
    gatewayConfig.dataDir,
  );
  console.log(`
s3dfs is running
  S3 endpoint     ${endpoint}
  access key      ${gateway.credentials.accessKey}
  secret key      ${secret.where}
  management API  ${manager.url}   (admin token: ${managerConfig.adminToken ? 'from S3DFS_ADMIN_TOKEN' : `see ${gatewayConfig.dataDir}/admin-token`})
  data dir        ${gatewayConfig.dataDir}   metadata: ${gatewayConfig.databaseUrl ? 'Postgres' : 'embedded PGlite'}

try it:
  export AWS_ACCESS_KEY_ID=${gateway.credentials.accessKey} AWS_SECRET_ACCESS_KEY=${secret.shell} AWS_DEFAULT_REGION=us-east-1
  aws --endpoint-url ${endpoint} s3 mb s3://demo
  aws --endpoint-url ${endpoint} s3 cp ./README.md s3://demo/
  aws --endpoint-url ${endpoint} s3 ls s3://demo
`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    await gateway.stop();
    await manager.stop();
    await db.destroy();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

/**
 * How the banner speaks of the root secret key. Never the key itself in what may be a log (stdout
 * under systemd, Docker or CI is kept, and read by more people than the operator): where it is
 * kept, and a shell expression that reads it from there. The one exception is the start that has
 * just generated it, when stdout is a terminal: the operator sees it once, on screen, as with
 * `s3dfs keys create`.
 */
function secretLines(
  creds: { secretKey: string; generated: boolean },
  fromEnv: boolean,
  dataDir: string,
): { where: string; shell: string } {
  if (fromEnv) {
    return { where: 'from S3DFS_SECRET_KEY', shell: '"$S3DFS_SECRET_KEY"' };
  }
  const file = credentialsFile(dataDir);
  const shell = `"$(node -p 'require(${JSON.stringify(file)}).secretKey')"`;
  if (creds.generated && process.stdout.isTTY === true) {
    return { where: `${creds.secretKey}   (generated: shown this once; kept in ${file})`, shell };
  }
  return { where: `see ${file}`, shell };
}

function collect<T>(problems: string[], load: () => T): T | undefined {
  try {
    return load();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    for (const p of err.problems) if (!problems.includes(p)) problems.push(p);
    return undefined;
  }
}
