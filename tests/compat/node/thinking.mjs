// The guide's Node.js example "For thinking models / OpenAI compatible / Node.js", copied.
// Changes are marked "changed:": the base URL comes from MULTITURN_BASE_URL, the user's input
// from SCRIPTED_INPUT (a JSON array) instead of readline, and the loop ends with those inputs.
import OpenAI from "openai";
import process from 'process';
// changed: was import readline from 'readline/promises';

// changed: scripted inputs in place of readline.createInterface({input: process.stdin, output: process.stdout})
const scripted = JSON.parse(process.env.SCRIPTED_INPUT || "[]");
const rl = {
    question: async (prompt) => { const answer = scripted.shift(); console.log(prompt + answer); return answer; },
};

// Initialize the openai client
const openai = new OpenAI({
    // API keys vary by region. To obtain an API key, see https://www.alibabacloud.com/help/en/model-studio/get-api-key
    apiKey: process.env.DASHSCOPE_API_KEY, // Read from environment variables
    baseURL: process.env.MULTITURN_BASE_URL // changed: was 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1'
});

let reasoningContent = '';
let answerContent = '';
let isAnswering = false;
let messages = [];
let conversationIdx = 1;

async function main() {
    while (scripted.length > 0) { // changed: was while (true)
        console.log("=".repeat(20) + `Conversation Round ${conversationIdx}` + "=".repeat(20));
        conversationIdx++;

        // Read user input
        const userInput = await rl.question("Enter your message: ");
        messages.push({ role: 'user', content: userInput });

        // Reset state
        reasoningContent = '';
        answerContent = '';
        isAnswering = false;

        try {
            const stream = await openai.chat.completions.create({
                // You can replace this with other deep thinking models as needed
                model: 'qwen-plus',
                messages: messages,
                enable_thinking: true,
                stream: true,
                // stream_options:{
                //     include_usage: true
                // }
            });

            console.log("\n" + "=".repeat(20) + "Thinking Process" + "=".repeat(20) + "\n");

            for await (const chunk of stream) {
                if (!chunk.choices?.length) {
                    console.log('\nUsage:');
                    console.log(chunk.usage);
                    continue;
                }

                const delta = chunk.choices[0].delta;

                // Process the thinking process
                if (delta.reasoning_content) {
                    process.stdout.write(delta.reasoning_content);
                    reasoningContent += delta.reasoning_content;
                }

                // Process the formal response
                if (delta.content) {
                    if (!isAnswering) {
                        console.log('\n' + "=".repeat(20) + "Complete Response" + "=".repeat(20) + "\n");
                        isAnswering = true;
                    }
                    process.stdout.write(delta.content);
                    answerContent += delta.content;
                }
            }

            // Add the complete response to the message history
            messages.push({ role: 'assistant', content: answerContent });
            console.log("\n");
            // changed: this round's reasoning and answer as JSON, for the test
            console.log("ROUND " + JSON.stringify([reasoningContent, answerContent]));

        } catch (error) {
            console.error('Error:', error);
        }
    }
}

// Start the program
main().catch(console.error);
