// Scenario 4's function as the seed wrote it in Node.js: reads event.Records, takes
// dynamodb.NewImage of INSERT records and indexes each into `transactions` through the
// Elasticsearch API (the endpoint read from the file ES_URL_FILE names), _id from the keys.
const fs = require("fs");

exports.handler = async (event) => {
  const esUrl = fs.readFileSync(process.env.ES_URL_FILE, "utf8").trim();
  for (const record of event.Records) {
    if (record.eventName !== "INSERT") {
      continue;
    }
    const image = record.dynamodb.NewImage;
    const document = {
      accountId: image.accountId.S,
      shortDescription: image.shortDescription.S,
      amount: Number(image.amount.N),
      userId: Number(image.userId.N),
      transactionId: Number(image.transactionId.N),
    };
    const id = `${document.userId}-${document.transactionId}`;
    const response = await fetch(`${esUrl}/transactions/_doc/${id}`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(document),
    });
    if (!response.ok) {
      throw new Error(`indexing ${id} answered ${response.status}`);
    }
  }
  return { indexed: true };
};
