'use strict';
// shared/seeds/004 (Twenty CRM, older docs), "Webhook Validation". The document
// gives numbered steps and a code sample that only computes the signature:
//
//   1. Concatenate the timestamp (from `X-Twenty-Webhook-Timestamp` header), a colon,
//      and the JSON string of the payload
//   2. Compute the HMAC SHA256 hash using your webhook secret as the key
//   3. Compare the resulting hex digest with the signature header
//
//   const crypto = require("crypto");
//   const timestamp = "1735066639761";
//   const payload = JSON.stringify({...});
//   const secret = "your-secret";
//   const stringToSign = `${timestamp}:${JSON.stringify(payload)}`;
//   const signature = crypto.createHmac("sha256", secret)
//   .update(stringToSign)
//   .digest("hex");
//
// The sample stringifies the payload twice (a slip: step 1 says "the JSON
// string of the payload"). This receiver follows the steps, with the
// sample's code and its inputs taken from the request. Run with
// --as-sample to stringify twice, exactly as the sample's code does.
const { express, createApp } = require('./express_shim');

const app = createApp();
app.use(express.json());
const asSample = process.argv.includes('--as-sample');

const crypto = require("crypto");
app.post('/webhook', (req, res) => {
const timestamp = req.headers['x-twenty-webhook-timestamp'];
const payload = JSON.stringify(req.body);
const secret = process.env.WEBHOOK_SECRET;
// Step 1
const stringToSign = asSample
  ? `${timestamp}:${JSON.stringify(payload)}`
  : `${timestamp}:${payload}`;
// Step 2
const signature = crypto.createHmac("sha256", secret)
.update(stringToSign)
.digest("hex");
// Step 3
if (signature !== req.headers['x-twenty-webhook-signature']) {
return res.status(401).send('Invalid signature');
}
res.sendStatus(200);
});

app.handle();
