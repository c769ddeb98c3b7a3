// The guide's Node.js example "Getting started / OpenAI compatible / Node.js" (the phone store),
// copied. Changes are marked "changed:": the base URL comes from MULTITURN_BASE_URL, the user's
// input from SCRIPTED_INPUT (a JSON array) instead of readline, the loop ends when the scripted
// answers run out, and max_tokens keeps the embedded model's answers short.
import OpenAI from "openai";
// changed: was import { createInterface } from 'readline/promises';

// changed: was "https://dashscope-intl.aliyuncs.com/compatible-mode/v1"
const BASE_URL = process.env.MULTITURN_BASE_URL;
// API keys vary by region. To obtain an API key, see https://www.alibabacloud.com/help/en/model-studio/get-api-key
const openai = new OpenAI({
    apiKey: process.env.DASHSCOPE_API_KEY,
    baseURL: BASE_URL
});

async function getResponse(messages) {
    try {
        const completion = await openai.chat.completions.create({
            // For a list of models, see https://www.alibabacloud.com/help/en/model-studio/getting-started/models
            model: "qwen-plus",
            messages: messages,
            max_tokens: Number(process.env.MAX_TOKENS || 32), // changed: the guide sets none
        });
        return completion.choices[0].message.content;
    } catch (error) {
        console.error("Error fetching response:", error);
        throw error;  // Re-throw the exception for handling by the upper layer
    }
}

// Initialize the messages array
const messages = [
    {
        "role": "system",
        "content": `You are a salesperson at the Bailian phone store. You are responsible for recommending phones to users. The phones have two parameters: screen size (including 6.1-inch, 6.5-inch, and 6.7-inch) and resolution (including 2K and 4K).
        You can only ask the user for one parameter at a time. If the user does not provide complete information, you need to ask a follow-up question to get the missing parameter. When all parameters are collected, you must say: I have understood your purchase intention. Please wait.`,
    }
];

let assistant_output = "Welcome to the Bailian phone store. What screen size are you looking for?";
console.log(assistant_output);


// changed: scripted answers in place of createInterface({input: process.stdin, output: process.stdout})
const scripted = JSON.parse(process.env.SCRIPTED_INPUT || "[]");
const readline = {
    question: async (prompt) => { const answer = scripted.shift(); console.log(prompt + answer); return answer; },
    close: () => {},
};

(async () => {
    // changed: the loop also ends when the scripted answers run out
    while (!assistant_output.includes("I have understood your purchase intention") && scripted.length > 0) {
        const user_input = await readline.question("Please enter: ");
        messages.push({ role: "user", content: user_input});
        try {
            const response = await getResponse(messages);
            assistant_output = response;
            messages.push({ role: "assistant", content: assistant_output });
            console.log(assistant_output);
            console.log("\n");
        } catch (error) {
            console.error("An error occurred while fetching the response:", error);
        }
    }
    readline.close();
    // changed: the conversation as JSON on the last line, for the test
    console.log("MESSAGES " + JSON.stringify(messages));
})();
