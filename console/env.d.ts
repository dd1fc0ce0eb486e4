// Stylesheets are bundled by esbuild (console/build.mjs); TypeScript only needs to accept them.
declare module '*.css';
