// Preloaded (`node --require`) by every npm script before the TypeScript entry points. CommonJS and
// old syntax on purpose: it must run on any Node, so that an old one fails here, in the first
// second, with the fix, and not later with "Unknown file extension .ts".
'use strict';
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    'insurance-idp runs its TypeScript sources on Node.js 22.18 or newer (24 preferred); this is Node ' +
      process.version +
      ' (' +
      process.execPath +
      ').\nFix: run `npm ci` (it brings Node 24 from the npm registry into node_modules/.bin, which npm scripts use), or install Node 24 LTS.\n',
  );
  process.exit(1);
}
