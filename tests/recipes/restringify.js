'use strict';
// Prints JSON.stringify(JSON.parse(<stdin>)): the bytes a receiver that
// re-serialises the parsed body (001, 002, 003, 004) signs.
const fs = require('fs');
process.stdout.write(JSON.stringify(JSON.parse(fs.readFileSync(0, 'utf8'))));
