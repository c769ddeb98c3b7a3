// The parameter table (docs/parameters.md) with Node's official `openai` package: each case is
// one request; what the gateway answered is printed as one JSON line per case, for the test to check.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.MULTITURN_BASE_URL, apiKey: process.env.DASHSCOPE_API_KEY, maxRetries: 0 });
const ask = [{ role: "user", content: "What's the weather in Paris?" }];
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The current weather of a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};
const base = { model: "qwen-plus", messages: ask, max_tokens: 48, temperature: 0 };

const cases = {
  tools_required: { ...base, tools: [weather], tool_choice: "required" },
  tools_named_stream: { ...base, tools: [weather], tool_choice: { type: "function", function: { name: "get_weather" } }, stream: true },
  json_schema: {
    ...base,
    messages: [{ role: "user", content: "Invent a person." }],
    response_format: {
      type: "json_schema",
      json_schema: { name: "person", strict: true, schema: { type: "object", properties: { name: { type: "string" }, age: { type: "integer" } }, required: ["name", "age"], additionalProperties: false } },
    },
  },
  n_2: { ...base, n: 2 },
  logprobs: { ...base, logprobs: true },
  enable_thinking: { ...base, enable_thinking: true },
  unknown_field: { ...base, enable_search: true },
  labels: { ...base, user: "someone", max_tokens: 4 },
};

for (const [name, body] of Object.entries(cases)) {
  try {
    if (body.stream) {
      const calls = {};
      let finish = null;
      for await (const chunk of await client.chat.completions.create(body)) {
        for (const choice of chunk.choices) {
          finish = choice.finish_reason ?? finish;
          for (const piece of choice.delta.tool_calls ?? []) {
            const call = (calls[piece.index] ??= { name: "", arguments: "" });
            call.name += piece.function?.name ?? "";
            call.arguments += piece.function?.arguments ?? "";
          }
        }
      }
      console.log(JSON.stringify({ name, status: 200, finish, calls: Object.values(calls) }));
    } else {
      const done = await client.chat.completions.create(body);
      const choice = done.choices[0];
      console.log(JSON.stringify({ name, status: 200, finish: choice.finish_reason, content: choice.message.content, calls: (choice.message.tool_calls ?? []).map((c) => c.function) }));
    }
  } catch (error) {
    console.log(JSON.stringify({ name, status: error.status ?? null, param: error.param ?? null, message: error.message }));
  }
}
