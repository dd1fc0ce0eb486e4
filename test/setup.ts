// Loaded by mocha before every test file: keep logs quiet unless LOG_LEVEL asks for them.
process.env.NODE_ENV ??= 'test';
