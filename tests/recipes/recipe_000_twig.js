'use strict';
// shared/seeds/000 (Twig AI), "Receiving Webhooks > Endpoint Implementation > Node.js/Express",
// as printed (handlers stubbed, app.listen left out).
const { express, createApp } = require('./express_shim'); // stands in for require('express')

const crypto = require('crypto');
const app = createApp(); // express()

app.post('/webhooks/twig', express.raw({type: 'application/json'}), (req, res) => {
  const signature = req.headers['x-twig-signature'];
  const payload = req.body;

  // Verify signature
  if (!verifySignature(payload, signature)) {
    return res.status(401).send('Invalid signature');
  }

  const event = JSON.parse(payload);

  // Handle event
  switch(event.type) {
    case 'interaction.completed':
      handleInteraction(event.data);
      break;
    case 'agent.updated':
      handleAgentUpdate(event.data);
      break;
    // Add more handlers
  }

  res.status(200).send('OK');
});

function verifySignature(payload, signature) {
  const secret = process.env.WEBHOOK_SECRET;
  const expected = crypto
    .createHmac('sha256', secret)
    .update(payload)
    .digest('hex');
  return crypto.timingSafeEqual(
    Buffer.from(signature),
    Buffer.from(expected)
  );
}

function handleInteraction(_data) {}
function handleAgentUpdate(_data) {}

app.handle();
