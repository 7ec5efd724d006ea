'use strict';
// The little of Express the recipes in shared/seeds use, so each recipe's
// route handler and verification function can be pasted as the documents
// print them.
//
// Input (stdin): {"body": "<raw request body>", "headers": {...}, "secret": "...",
//                 "now": <optional unix milliseconds to run the recipe at>}
// The secret is put where the recipes read it from (WEBHOOK_SECRET,
// TWENTY_WEBHOOK_SECRET). Exit status: 0 when the handler answered 2xx
// (accepted), 1 otherwise. The last stdout line is "HTTP <status>"; a handler
// that throws answers 500, as Express does.

const fs = require('fs');

const input = JSON.parse(fs.readFileSync(0, 'utf8'));
process.env.WEBHOOK_SECRET = input.secret;
process.env.TWENTY_WEBHOOK_SECRET = input.secret;
if (input.now !== undefined && input.now !== null) {
  const fixed = Number(input.now);
  Date.now = () => fixed;
}

// Node's http module lower-cases header names; Express's req.headers is that object.
const headers = {};
for (const [name, value] of Object.entries(input.headers)) {
  headers[name.toLowerCase()] = value;
}
const rawBody = Buffer.from(input.body, 'utf8');

function typeMatches(type) {
  const contentType = (headers['content-type'] || '').split(';')[0].trim().toLowerCase();
  return contentType === type;
}

// body-parser leaves req.body = {} when the Content-Type does not match.
const express = {
  raw: (options = {}) => (req) => {
    req.body = typeMatches(options.type || 'application/octet-stream') ? rawBody : {};
  },
  json: () => (req) => {
    req.body = typeMatches('application/json') ? JSON.parse(rawBody.toString('utf8')) : {};
  },
};

function createApp() {
  const stack = [];
  let handlers = null;
  return {
    use(middleware) {
      stack.push(middleware);
    },
    post(_path, ...chain) {
      handlers = chain;
    },
    async handle() {
      const req = { headers, body: undefined };
      let status = null;
      const res = {
        status(code) {
          status = code;
          return res;
        },
        send() {
          if (status === null) status = 200;
          return res;
        },
        json() {
          if (status === null) status = 200;
          return res;
        },
        sendStatus(code) {
          status = code;
          return res;
        },
      };
      try {
        for (const step of [...stack, ...handlers]) {
          await step(req, res);
        }
      } catch (error) {
        console.error('handler threw:', error);
        status = 500;
      }
      if (status === null) status = 500;
      console.log(`HTTP ${status}`);
      process.exitCode = status >= 200 && status < 300 ? 0 : 1;
    },
  };
}

module.exports = { express, createApp };
