import { prefillTemplate } from '../bench/lib/prefill.ts';
prefillTemplate(Number(process.argv[2]), (s) => console.log(s));
