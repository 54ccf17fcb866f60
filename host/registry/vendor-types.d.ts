/**
 * The slice of better-sqlite3 12 and pg 8 this registry uses. Their type
 * packages (@types/better-sqlite3, @types/pg) are not installed; declaring
 * only what we call keeps the compiler checking our side of the boundary.
 */
declare module "better-sqlite3" {
  namespace Database {
    interface RunResult {
      changes: number;
      lastInsertRowid: number | bigint;
    }
    interface Statement {
      run(...params: unknown[]): RunResult;
      get(...params: unknown[]): unknown;
      all(...params: unknown[]): unknown[];
      readonly reader: boolean;
    }
    interface Database {
      prepare(sql: string): Statement;
      exec(sql: string): this;
      pragma(source: string, options?: { simple?: boolean }): unknown;
      close(): this;
      readonly inTransaction: boolean;
      readonly open: boolean;
    }
    interface Options {
      readonly?: boolean;
      fileMustExist?: boolean;
      timeout?: number;
    }
  }
  interface DatabaseConstructor {
    new (filename: string, options?: Database.Options): Database.Database;
  }
  const Database: DatabaseConstructor;
  export default Database;
}

declare module "pg" {
  interface QueryResult<R = any> {
    rows: R[];
    rowCount: number | null;
  }
  /** A named query is prepared once per connection (node-postgres docs, "Prepared statements"). */
  interface QueryConfig {
    text: string;
    values?: unknown[];
    name?: string;
  }
  interface PoolClient {
    query<R = any>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
    query<R = any>(config: QueryConfig): Promise<QueryResult<R>>;
    release(err?: Error | boolean): void;
    on(event: "error", listener: (err: Error) => void): this;
    off(event: "error", listener: (err: Error) => void): this;
  }
  interface PoolConfig {
    connectionString?: string;
    options?: string;
    max?: number;
    idleTimeoutMillis?: number;
    connectionTimeoutMillis?: number;
    /** Shown in pg_stat_activity (node-postgres lib/connection-parameters.js:119). */
    application_name?: string;
    types?: { getTypeParser(oid: number, format?: string): (value: string) => unknown };
  }
  class Pool {
    constructor(config?: PoolConfig);
    query<R = any>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
    query<R = any>(config: QueryConfig): Promise<QueryResult<R>>;
    connect(): Promise<PoolClient>;
    end(): Promise<void>;
    on(event: "error", listener: (err: Error) => void): this;
  }
  const types: { getTypeParser(oid: number, format?: string): (value: string) => unknown };
  const _default: { Pool: typeof Pool; types: typeof types };
  export default _default;
  export { Pool, types, type PoolClient, type PoolConfig, type QueryConfig, type QueryResult };
}
